package psp

import (
	"strconv"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/padding"
	"github.com/moov-io/iso8583/prefix"
)

// Field numbers ToneVault uses. See doc.go for what each carries.
const (
	fPAN          = 2
	fProcCode     = 3
	fAmount       = 4
	fTransmission = 7
	fSTAN         = 11
	fLocalTime    = 12
	fLocalDate    = 13
	fExpiry       = 14
	fMCC          = 18
	fEntryMode    = 22
	fCondition    = 25
	fTrack2       = 35
	fRRN          = 37
	fAuthCode     = 38
	fRespCode     = 39
	fTerminal     = 41
	fMerchant     = 42
	fTrack1       = 45
	fAdditional   = 48
	fCurrency     = 49
	fPINBlock     = 52
	fMOTO         = 60
	fPOSData      = 61
	fNetMgmt      = 70
	fOriginal     = 90
	fCVV          = 126
)

// SensitiveFields are the fields that hold card data. They are *Sensitive
// in Spec, and Filters masks them in moov-io's describe output.
var SensitiveFields = []int{fPAN, fExpiry, fTrack2, fTrack1, fPINBlock, fCVV}

func str(length int, desc string, pref prefix.Prefixer, pad padding.Padder) *field.String {
	return field.NewString(&field.Spec{Length: length, Description: desc, Enc: encoding.ASCII, Pref: pref, Pad: pad})
}

func sensitive(length int, desc string, pref prefix.Prefixer) *Sensitive {
	return NewSensitive(&field.Spec{Length: length, Description: desc, Enc: encoding.ASCII, Pref: pref})
}

// Spec is ISO 8583:1987 in ASCII with a hex-ASCII bitmap, reduced to the
// fields ToneVault sends and reads. The connector and psp-sim share it.
var Spec = &iso8583.MessageSpec{
	Name: "ToneVault ISO 8583:1987 ASCII",
	Fields: map[int]field.Field{
		0: str(4, "Message Type Indicator", prefix.ASCII.Fixed, nil),
		1: field.NewBitmap(&field.Spec{
			Length:      8,
			Description: "Bitmap",
			Enc:         encoding.BytesToASCIIHex,
			Pref:        prefix.Hex.Fixed,
		}),
		fPAN:          sensitive(19, "Primary Account Number", prefix.ASCII.LL),
		fProcCode:     str(6, "Processing Code", prefix.ASCII.Fixed, nil),
		fAmount:       str(12, "Transaction Amount", prefix.ASCII.Fixed, padding.Left('0')),
		fTransmission: str(10, "Transmission Date & Time (MMDDhhmmss UTC)", prefix.ASCII.Fixed, nil),
		fSTAN:         str(6, "Systems Trace Audit Number", prefix.ASCII.Fixed, nil),
		fLocalTime:    str(6, "Local Transaction Time (hhmmss)", prefix.ASCII.Fixed, nil),
		fLocalDate:    str(4, "Local Transaction Date (MMDD)", prefix.ASCII.Fixed, nil),
		fExpiry:       sensitive(4, "Expiration Date (YYMM)", prefix.ASCII.Fixed),
		fMCC:          str(4, "Merchant Type", prefix.ASCII.Fixed, nil),
		fEntryMode:    str(3, "POS Entry Mode", prefix.ASCII.Fixed, nil),
		fCondition:    str(2, "POS Condition Code", prefix.ASCII.Fixed, nil),
		fTrack2:       sensitive(37, "Track 2 Data", prefix.ASCII.LL),
		fRRN:          str(12, "Retrieval Reference Number", prefix.ASCII.Fixed, nil),
		fAuthCode:     str(6, "Authorization Identification Response", prefix.ASCII.Fixed, nil),
		fRespCode:     str(2, "Response Code", prefix.ASCII.Fixed, nil),
		fTerminal:     str(8, "Card Acceptor Terminal Identification", prefix.ASCII.Fixed, padding.Right(' ')),
		fMerchant:     str(15, "Card Acceptor Identification Code", prefix.ASCII.Fixed, padding.Right(' ')),
		fTrack1:       sensitive(76, "Track 1 Data", prefix.ASCII.LL),
		fAdditional:   str(999, "Additional Data - Private", prefix.ASCII.LLL, nil),
		fCurrency:     str(3, "Currency Code, Transaction", prefix.ASCII.Fixed, nil),
		fPINBlock:     sensitive(16, "PIN Data", prefix.ASCII.Fixed),
		fMOTO:         str(999, "Additional POS Information (Visa: MOTO/ECI indicator in 60.8)", prefix.ASCII.LLL, nil),
		fPOSData:      str(999, "POS Data (Mastercard DE 61)", prefix.ASCII.LLL, nil),
		fNetMgmt:      str(3, "Network Management Information Code", prefix.ASCII.Fixed, nil),
		fOriginal:     str(42, "Original Data Elements", prefix.ASCII.Fixed, nil),
		fCVV:          sensitive(999, "Card Verification Value (private)", prefix.ASCII.LLL),
	},
}

// maskFilter replaces a field's describe output whatever it is.
func maskFilter(string, field.Field) string { return "[redacted]" }

// Filters mask every card data field in iso8583.Describe output, on top
// of Sensitive never printing its value:
//
//	iso8583.Describe(msg, w, psp.Filters()...)
func Filters() []iso8583.FieldFilter {
	fs := make([]iso8583.FieldFilter, 0, len(SensitiveFields))
	for _, id := range SensitiveFields {
		fs = append(fs, iso8583.FilterField(strconv.Itoa(id), maskFilter))
	}
	return fs
}
