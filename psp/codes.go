package psp

// codeReasons maps ISO 8583:1987 field 39 response codes to stable reasons.
// Codes not listed decline with reason "declined_<code>".
var codeReasons = map[string]string{
	"00": "approved",
	"01": "refer_to_issuer",
	"03": "invalid_merchant",
	"04": "pick_up_card",
	"05": "do_not_honour",
	"12": "invalid_transaction",
	"13": "invalid_amount",
	"14": "invalid_card",
	"30": "format_error",
	"41": "lost_card",
	"43": "stolen_card",
	"51": "insufficient_funds",
	"54": "expired_card",
	"55": "incorrect_pin",
	"57": "not_permitted_to_cardholder",
	"58": "not_permitted_to_terminal",
	"59": "suspected_fraud",
	"61": "exceeds_withdrawal_limit",
	"62": "restricted_card",
	"65": "exceeds_frequency_limit",
	"91": "issuer_unavailable",
	"96": "system_malfunction",
	"N7": "cvv_mismatch",
}

// errorCodes are answers that say the network failed rather than the
// issuer said no: the agent may retry.
var errorCodes = map[string]bool{"91": true, "96": true, "30": true}

// Classify maps a field 39 response code to an outcome and a reason.
func Classify(code string) (Outcome, string) {
	if code == "00" {
		return Approved, "approved"
	}
	reason, ok := codeReasons[code]
	if !ok {
		reason = "declined_" + sanitizeCode(code)
	}
	if errorCodes[code] {
		return Error, reason
	}
	return Declined, reason
}

// sanitizeCode keeps a reason printable whatever the acquirer sent.
func sanitizeCode(code string) string {
	b := make([]byte, 0, 2)
	for i := 0; i < len(code) && i < 2; i++ {
		c := code[i]
		if c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
			b = append(b, c)
		} else {
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}
