// Package psp authorizes card payments with the acquirer: the Connector
// interface, the ISO 8583:1987 connector (ISO, built on moov-io/iso8583 and
// moov-io/iso8583-connection), reversals, and in psp/sim the acquirer
// simulator behind `tonevault psp-sim`.
//
// # Messages
//
// 0100/0110 authorization, 0200/0210 sale, 0400/0410 reversal (0401/0411
// when repeated), 0800/0810 network management (field 70: 001 sign-on,
// 301 echo). ASCII encoding, hex-ASCII bitmap, behind a length header:
// 2-byte big-endian binary (default) or 4 ASCII digits (Config.Header).
//
// Fields of an 0100/0200:
//
//	 2  PAN (LL)                     card data
//	 3  processing code 000000       purchase
//	 4  amount, minor units, 12 digits
//	 7  transmission date/time MMDDhhmmss, UTC
//	11  STAN                         see below
//	12  local time hhmmss, 13 local date MMDD (UTC: the gateway's clock)
//	14  expiry YYMM                  card data; the keypad gives MMYY
//	18  merchant category code       Config.MCC, default 5969
//	22  POS entry mode 012           manual key entry, no PIN capability
//	25  POS condition code 08        mail/telephone order
//	37  RRN                          see below
//	41  terminal id, 42 merchant id  Config.Terminal, Config.Merchant
//	49  currency, ISO 4217 numeric   from Request.Currency (alpha-3)
//	60  additional POS info (LLL)    Visa only: 0000000001, 60.8 (positions
//	                                 9-10) 01 single mail/telephone order
//	61  POS data (LLL)               Mastercard only: 203310000, DE 61
//	                                 subfield 4 = 3 phone order, 5 = 1 card
//	                                 not present
//	126 CVV/CVV2/CID (LLL, private)  card data; only when given, only in
//	                                 the request, never in a reply or log
//
// Fields 22, 25, 60 and 61 are the defaults of Config.MOTO (see below).
// An 0400/0401 carries 3, 4, 7 (its own), 11 (its own), 12, 13, 37, 41,
// 42, 49 and 90, and no card data.
//
// Replies carry 38 (auth code, when approved) and 39 (response code). The
// connector ignores any card data a reply echoes, and wipes it.
//
// # Telephone-order indicators
//
// Fields 22, 25, 60 and 61 say "telephone order, card keyed, card not
// present" in each brand's terms (type MOTO, DefaultMOTO). Visa reads it
// in field 60.8, positions 9-10: 01 is a single mail/telephone order, and
// 08 (what the connector sent before) a non-secure e-commerce order.
// Mastercard reads it in DE 22 subfield 1 (01, manual key entry) and DE 61
// subfields 4 (3, phone order) and 5 (1, card not present); the other DE
// 61 subfields sent are "no terminal used" and zeros, and subfields 10 on
// are left out. Other brands get fields 22 and 25 only. The acquirer's own
// specification has the last word: Config.MOTO (psp.moto) replaces a
// brand's entry. Response.MOTO reports what a request was sent with, for
// the caller to keep with the payment (store.Payment has the columns).
//
// # Card data
//
// Fields 2, 14, 35, 45, 52 and 126 are *Sensitive, a moov-io field type
// that keeps its value as bytes, packs without making a Go string,
// prints and marshals to JSON only as "[redacted]", and is wiped (value
// and packed form) after the message is sent or read. Filters masks them
// in iso8583.Describe too. The connector packs and frames messages itself
// (a MessageWriter/MessageReader for iso8583-connection) so the packed
// bytes are wiped after the write and after unpacking. Pack does not use
// moov-io's Message.Pack, whose growing append leaves copies of the card
// number behind: it sizes one buffer (length header included) before any
// card data goes in, and the Sensitive fields write straight into it.
// moov-io's own pack and unpack errors, and its JSON, can quote field
// content: Pack and Unpack replace them with PackError and UnpackError,
// which name a field number only, and connection errors are logged by
// their SafeError text. Never call Message.Pack, Message.Clone or
// json.Marshal on a message with card data: they pack the moov-io way.
//
// What is not wiped: the 4 KiB bufio buffer of iso8583-connection's
// reader (one per connection, created by its read loop, out of reach)
// keeps the last replies read until newer ones overwrite it. Replies
// carry no card data from psp-sim; an acquirer that echoes field 2 in its
// replies leaves the card number there. On TLS connections crypto/tls
// encrypts the packed message from this package's buffer (TLS 1.2) or
// seals it in place in its record buffer (TLS 1.3), so no plaintext copy
// stays behind there.
//
// # STAN and RRN
//
// The STAN is one counter for every message a connector sends,
// 000001..999999 then wrapping. It lives in the store, one counter per
// terminal id, from which each connector reserves blocks of 1000 with one
// statement before using them: a restart skips ahead and never repeats
// one, and gateways sharing a database and a terminal id never send the
// same one. Every 0100/0200 takes two, its own and its reversal's, so
// that the reversal written ahead is complete. The RRN is YDDDhh + STAN
// (last digit of the year, day of year, hour, UTC): unique while the STAN
// is, i.e. for 999,999 messages.
//
// # Reversals
//
// The queue is in the gateway's store (type Store, which *store.Store
// satisfies: SQLite, or PostgreSQL shared by several gateways). Before an
// 0100/0200 leaves, its reversal is written there (the write-ahead
// intent), leased to this connector until the request's deadline
// (Config.Timeout, or the ctx deadline if sooner) plus Config.LeaseMargin;
// when the store cannot take it, nothing is sent and Authorize fails with
// ErrUnavailable, which the caller may retry. Then:
//
//   - a definite answer (0110/0210 with field 39) clears it: nothing to
//     reverse. If it cannot be cleared (the store is down, or the lease
//     ran out and a worker took it), an approval is not kept: Authorize
//     returns Outcome Error, psp_timeout, and the reversal goes out;
//   - no answer in time, the connection dropped after the request was
//     handed to it, or a malformed answer: Authorize returns Outcome
//     Error (psp_timeout, psp_connection_lost, psp_bad_response) and
//     releases the intent as a reversal due now, with that reason. A late
//     answer that arrives afterwards is logged and does not change that:
//     the reversal stands;
//   - the process dies in between (kill -9, power cut): the intent stays,
//     leased, with reason psp_connection_lost, and once the lease runs out
//     whichever gateway polls first (this one restarted, or another on the
//     database) sends it.
//
// A worker polls the store every Config.ReversalBackoff (and at once when
// a reversal is queued or a connection signs on), leases one due reversal
// at a time for Config.Timeout plus LeaseMargin, sends it and removes it
// when the acquirer answers 0410 with 00 or 25 (no such original: nothing
// to undo). The lease is what makes exactly one gateway send each
// reversal. One not acknowledged is sent again as a repeat (0401) after a
// wait that doubles from ReversalBackoff to MaxReversalBackoff. A gateway
// that dies while sending leaves it to the next once the lease runs out,
// which may send it again as an 0400 the acquirer sees twice.
//
// A queued reversal holds what an 0400 needs and no card data: original
// MTI, STAN, RRN, transmission time, local date and time, processing
// code, amount, currency, terminal and merchant ids, the reversal's own
// STAN. The 0400 carries no field 2: the acquirer identifies the original
// by field 90 (original MTI + STAN + transmission date/time + two zero
// institution ids) with fields 37, 41 and 42. Acquirers that insist on
// field 2 in a reversal cannot be served without storing the PAN, which
// ToneVault refuses to do. Config.OnReversal is told of each acknowledged
// reversal (serve writes authorization.reversed to the audit trail, with
// the original's STAN).
//
// Before the store, a connector kept the queue as JSON files in
// Config.StateDir/reversals and the STAN counter in StateDir/stan. NewISO
// moves them into the store (the queue with its attempt counts, the
// counter raised to where the file left off) and removes the files; a file
// that does not parse or that the store refuses is renamed .bad and
// logged.
//
// # Connections
//
// iso8583-connection's Pool holds one connection per Config.Addrs entry
// (repeat an address for more), each signed on with 0800/001 before the
// pool hands it out, echoed (0800/301) after Config.EchoInterval idle and
// closed when an echo fails; the pool redials closed connections with
// backoff (ReconnectWait up to MaxReconnectWait). Config.CAFile turns on
// TLS (CertFile and KeyFile add a client certificate).
//
// # Response codes
//
// 00 approved; declined with a reason: 05 do_not_honour, 14 invalid_card,
// 51 insufficient_funds, 54 expired_card, 57 not_permitted_to_cardholder,
// 62 restricted_card, and others in codes.go; 30, 91 and 96 are Outcome
// Error (the network, not the issuer).
//
// # psp-sim test cards
//
// Rules, applied in this order to 0100 and 0200 (amounts in minor units):
//
//	card 4000000000000119, or amount 99999   never answered
//	card 4000000000000127                    connection closed, no answer
//	card 4000000000000135                    answered with a frame that is not ISO 8583
//	card 4000000000000143                    answered 0110/0210 without field 39
//	amount ending in 0202 (10202, ...)       answered after --slow-delay (default 3s)
//	field 22 not starting 01, 25 not 08;
//	  Visa without 01 in field 60 positions
//	  9-10; Mastercard without 3 and 1 in
//	  field 61 positions 4 and 5            30 format error
//	PAN not 12-19 digits or failing Luhn     14 invalid card
//	card 4000000000000002                    05 do not honour
//	card 4000000000000069, or expiry before
//	  the current month                      54 expired card
//	amount ending in 51, or above --limit
//	  (default 1,000,000 = 10,000.00)        51 insufficient funds
//	any other card (4111111111111111,
//	  5555555555554444, 378282246310005, ...) 00, auth code T00001, T00002, ...
//
// 0800 gets 0810 00. 0400/0401 gets 0410/0411: 00 when the simulator saw
// the original, 25 when not; with --ignore-reversals it answers none.
// It logs one line per message with the PAN as first six and last four
// digits and never the expiry or CVV ("recv 0400 original_stan=... ->
// 0410 00 reversal acknowledged" for a reversal), and with --state-file
// keeps its counters (sim.Stats, including the original STANs reversed
// and the requests refused for their indicators) as JSON.
package psp
