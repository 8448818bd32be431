// Package siprec holds SIPREC's own formats (RFC 7865, RFC 7866): the
// recording metadata XML, the SDP of a recording session with its two
// labelled streams, and the multipart body that carries both. The
// recording client (SRC) in package sip writes them; a recording server
// (SRS, package siprec/srs) reads them. Nothing here does I/O.
package siprec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Namespace is RFC 7865's XML namespace of the metadata.
const Namespace = "urn:ietf:params:xml:ns:recording:1"

// ExtNamespace is ToneVault's extension data inside <session>: the
// gateway's call id, both legs' SIP Call-IDs and the correlation headers.
// An SRS that does not know it skips it, as RFC 7865 section 9 says.
const ExtNamespace = "https://github.com/tonevault/tonevault/siprec"

// ContentType is the metadata part's type (RFC 7866 section 9.1), and
// Disposition its Content-Disposition.
const (
	ContentType = "application/rs-metadata+xml"
	Disposition = "recording-session"
)

// MaxMetadata bounds what ParseMetadata reads; real documents for one
// call are a few KiB.
const MaxMetadata = 64 << 10

// Labels of the two streams in the SDP (a=label) and in the metadata:
// the customer's (what the gateway sends to the platform, masked) and the
// agent's (what it sends to the carrier).
const (
	LabelCustomer = "1"
	LabelAgent    = "2"
)

// ErrBadMetadata is a document ParseMetadata refuses.
var ErrBadMetadata = errors.New("siprec: malformed recording metadata")

// Metadata is a recording metadata document (RFC 7865 section 6): one
// communication session of one group, its participants and streams.
type Metadata struct {
	XMLName      xml.Name       `xml:"urn:ietf:params:xml:ns:recording:1 recording"`
	DataMode     string         `xml:"datamode,omitempty"`
	Groups       []Group        `xml:"group"`
	Sessions     []Session      `xml:"session"`
	Participants []Participant  `xml:"participant"`
	Streams      []Stream       `xml:"stream"`
	SessionAssoc []SessionAssoc `xml:"sessionrecordingassoc"`
	PartSession  []PartSession  `xml:"participantsessionassoc"`
	PartStream   []PartStream   `xml:"participantstreamassoc"`
}

// Group is a recording group (RFC 7865 6.2).
type Group struct {
	ID            string `xml:"group_id,attr"`
	AssociateTime string `xml:"associate-time,omitempty"`
}

// Session is the communication session (RFC 7865 6.3), with ToneVault's
// extension data.
type Session struct {
	ID        string    `xml:"session_id,attr"`
	GroupRef  string    `xml:"group-ref,omitempty"`
	StartTime string    `xml:"start-time,omitempty"`
	StopTime  string    `xml:"stop-time,omitempty"`
	Call      *CallData `xml:"https://github.com/tonevault/tonevault/siprec call,omitempty"`
}

// CallData is the gateway's extension data of a session: the call's own
// id, its legs' SIP Call-IDs and its correlation headers (the CRM's
// interaction id, User-to-User).
type CallData struct {
	ID          string        `xml:"id,omitempty"`
	Legs        []Leg         `xml:"sip-call-id"`
	Correlation []Correlation `xml:"correlation"`
}

// Leg is one leg's SIP Call-ID; Trunk is "carrier" or "platform".
type Leg struct {
	Trunk  string `xml:"trunk,attr"`
	CallID string `xml:",chardata"`
}

// Correlation is one correlation header of the call's INVITE.
type Correlation struct {
	Header string `xml:"header,attr"`
	Value  string `xml:",chardata"`
}

// Participant is one party (RFC 7865 6.5): its address of record and
// display name.
type Participant struct {
	ID     string  `xml:"participant_id,attr"`
	NameID *NameID `xml:"nameID,omitempty"`
}

// NameID is a participant's AOR and name.
type NameID struct {
	AOR  string `xml:"aor,attr"`
	Name string `xml:"name,omitempty"`
}

// Stream is one media stream (RFC 7865 6.6); Label matches the SDP's
// a=label.
type Stream struct {
	ID        string `xml:"stream_id,attr"`
	SessionID string `xml:"session_id,attr"`
	Label     string `xml:"label"`
}

// SessionAssoc ties the session to the recording session (RFC 7865 6.8).
type SessionAssoc struct {
	SessionID     string `xml:"session_id,attr"`
	AssociateTime string `xml:"associate-time,omitempty"`
}

// PartSession ties a participant to the session (RFC 7865 6.9).
type PartSession struct {
	ParticipantID string `xml:"participant_id,attr"`
	SessionID     string `xml:"session_id,attr"`
	AssociateTime string `xml:"associate-time,omitempty"`
}

// PartStream says which streams a participant sends and receives (RFC
// 7865 6.10).
type PartStream struct {
	ParticipantID string   `xml:"participant_id,attr"`
	Send          []string `xml:"send"`
	Recv          []string `xml:"recv"`
}

// Party is one side of a call as the gateway knows it.
type Party struct {
	AOR  string // a SIP URI: sip:user@host
	Name string // display name, may be empty
}

// Withheld is the participant of a caller who withheld their identity
// (RFC 3323): the recorder learns no more than an untrusted peer does.
var Withheld = Party{AOR: "sip:anonymous@anonymous.invalid", Name: "Anonymous"}

// Call is what the metadata says of one call.
type Call struct {
	ID          string        // the gateway's call id
	Legs        []Leg         // SIP Call-IDs of its legs
	Caller      Party         // the customer (Withheld when they asked)
	Callee      Party         // the number or agent called
	Correlation []Correlation // the correlation headers, in configuration order
	Start       time.Time     // when the call started
	// CallerIsCustomer: the caller is the customer (the call came in
	// from the carrier); false for a call the platform placed, where
	// the callee is the customer.
	CallerIsCustomer bool
}

// NewMetadata is the document for call c, fresh ids included: the
// customer participant sends the stream labelled LabelCustomer and
// receives LabelAgent, the other participant the reverse.
func NewMetadata(c Call, now time.Time) *Metadata {
	ts := now.UTC().Format(time.RFC3339)
	gid, sid := newID(), newID()
	callerID, calleeID := newID(), newID()
	custStream, agentStream := newID(), newID()
	m := &Metadata{
		DataMode: "complete",
		Groups:   []Group{{ID: gid, AssociateTime: ts}},
		Sessions: []Session{{ID: sid, GroupRef: gid, StartTime: c.Start.UTC().Format(time.RFC3339),
			Call: &CallData{ID: c.ID, Legs: c.Legs, Correlation: c.Correlation}}},
		Participants: []Participant{
			{ID: callerID, NameID: &NameID{AOR: c.Caller.AOR, Name: c.Caller.Name}},
			{ID: calleeID, NameID: &NameID{AOR: c.Callee.AOR, Name: c.Callee.Name}},
		},
		Streams: []Stream{
			{ID: custStream, SessionID: sid, Label: LabelCustomer},
			{ID: agentStream, SessionID: sid, Label: LabelAgent},
		},
		SessionAssoc: []SessionAssoc{{SessionID: sid, AssociateTime: ts}},
		PartSession: []PartSession{
			{ParticipantID: callerID, SessionID: sid, AssociateTime: ts},
			{ParticipantID: calleeID, SessionID: sid, AssociateTime: ts},
		},
	}
	cust, agent := callerID, calleeID
	if !c.CallerIsCustomer {
		cust, agent = calleeID, callerID
	}
	m.PartStream = []PartStream{
		{ParticipantID: cust, Send: []string{custStream}, Recv: []string{agentStream}},
		{ParticipantID: agent, Send: []string{agentStream}, Recv: []string{custStream}},
	}
	return m
}

// newID is an RFC 7865 identifier: a random UUID's 16 bytes in base64.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant RFC 4122
	return base64.StdEncoding.EncodeToString(b[:])
}

// Marshal writes the document with its XML declaration.
func (m *Metadata) Marshal() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("siprec: metadata: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// ParseMetadata reads a metadata document. It takes RFC 7865's elements
// that Metadata names and ToneVault's extension, and skips any other
// extension. A document over MaxMetadata bytes, one whose root is not
// <recording> in Namespace, or one with an element that names an id
// no element has, is ErrBadMetadata. The error never quotes the
// document: its values came from a peer.
func ParseMetadata(b []byte) (*Metadata, error) {
	if len(b) > MaxMetadata {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadMetadata, len(b), MaxMetadata)
	}
	// encoding/xml expands no entity of a DTD: a document is data only.
	dec := xml.NewDecoder(bytes.NewReader(b))
	var m Metadata
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadMetadata, xmlError(err))
	}
	// Nothing but whitespace, comments and processing instructions
	// after the root.
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after the root: %s", ErrBadMetadata, xmlError(err))
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, fmt.Errorf("%w: text after the root element", ErrBadMetadata)
			}
		case xml.Comment, xml.ProcInst:
		default:
			return nil, fmt.Errorf("%w: more than one root element", ErrBadMetadata)
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// xmlError says what encoding/xml found without the text it quotes.
func xmlError(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("XML syntax error on line %d", se.Line)
	}
	if _, ok := err.(xml.UnmarshalError); ok {
		return "not a recording document"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "document ends early"
	}
	return "unreadable document"
}

// check refuses ids that are empty or dangling.
func (m *Metadata) check() error {
	ids := map[string]string{}
	add := func(kind, id string) error {
		if id == "" {
			return fmt.Errorf("%w: a %s without its id", ErrBadMetadata, kind)
		}
		if _, dup := ids[id]; dup {
			return fmt.Errorf("%w: an id used twice", ErrBadMetadata)
		}
		ids[id] = kind
		return nil
	}
	for _, g := range m.Groups {
		if err := add("group", g.ID); err != nil {
			return err
		}
	}
	for _, s := range m.Sessions {
		if err := add("session", s.ID); err != nil {
			return err
		}
	}
	for _, p := range m.Participants {
		if err := add("participant", p.ID); err != nil {
			return err
		}
	}
	for _, s := range m.Streams {
		if err := add("stream", s.ID); err != nil {
			return err
		}
	}
	ref := func(kind, id string) error {
		if ids[id] != kind {
			return fmt.Errorf("%w: a reference to a %s that is not in the document", ErrBadMetadata, kind)
		}
		return nil
	}
	var errs []error
	for _, s := range m.Sessions {
		if s.GroupRef != "" {
			errs = append(errs, ref("group", s.GroupRef))
		}
	}
	for _, s := range m.Streams {
		errs = append(errs, ref("session", s.SessionID))
	}
	for _, a := range m.SessionAssoc {
		errs = append(errs, ref("session", a.SessionID))
	}
	for _, a := range m.PartSession {
		errs = append(errs, ref("participant", a.ParticipantID), ref("session", a.SessionID))
	}
	for _, a := range m.PartStream {
		errs = append(errs, ref("participant", a.ParticipantID))
		for _, s := range append(append([]string(nil), a.Send...), a.Recv...) {
			errs = append(errs, ref("stream", s))
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// CorrelationValue returns the value of correlation header name (compared
// without case) in the document's first session with extension data.
func (m *Metadata) CorrelationValue(name string) (string, bool) {
	for _, s := range m.Sessions {
		if s.Call == nil {
			continue
		}
		for _, c := range s.Call.Correlation {
			if strings.EqualFold(c.Header, name) {
				return c.Value, true
			}
		}
	}
	return "", false
}

// StreamOf returns the label of the stream participant p sends (the
// first one), "" when none.
func (m *Metadata) StreamOf(participantID string) string {
	for _, a := range m.PartStream {
		if a.ParticipantID != participantID || len(a.Send) == 0 {
			continue
		}
		for _, s := range m.Streams {
			if s.ID == a.Send[0] {
				return s.Label
			}
		}
	}
	return ""
}
