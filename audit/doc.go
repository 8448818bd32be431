// Package audit is ToneVault's audit trail: an append-only, hash-chained
// JSON Lines file with signed checkpoints, kept apart from the operational
// logs, that never holds card data (PCI DSS 10.2, 10.3).
//
// # File format
//
// One record per line, UTF-8 JSON, each line ending in "\n". A line is
// exactly what encoding/json writes for the record (fields in the order
// below, empty optional fields left out, no spaces), so any byte added,
// removed or changed makes the line fail to verify:
//
//	{"seq":2,"time":"2025-11-23T19:46:01.123456789Z","actor":"crm-prod","origin":"10.0.0.7",
//	 "call_id":"c-7f3a","payment_id":"p-91c2","event":"field.completed","outcome":"success",
//	 "reason":"card_number","masked_pan":"411111******1111","prev":"<64 hex digits>"}
//
// (shown on three lines here; one line in the file). Fields:
//
//	seq         1 for the first record of the file, then +1 with no gaps
//	time        when the Writer wrote it: RFC 3339, UTC, 9 fractional digits (TimeLayout)
//	actor       who (API key name, "system", "sip:<peer>", ...)
//	origin      from where (IP, host:port); optional
//	call_id     optional
//	payment_id  optional
//	event       one of Events()
//	outcome     success, failure or info
//	reason      optional free text, never card data
//	masked_pan  optional; at most the first 6 and last 4 digits, the rest '*'
//	key_id, sig checkpoints only
//	prev        lowercase hex SHA-256 of the previous line's bytes (without
//	            its "\n"); for seq 1, GenesisPrev (64 zeros)
//
// The first record a Writer writes, on a new file or each time it continues
// one, is audit.started. Every Options.CheckpointEvery records, on
// Writer.Checkpoint and on Writer.Close, it writes an audit.checkpoint
// record whose sig is the Signer's signature of
//
//	"tonevault audit checkpoint v1\n" + the checkpoint's own line without key_id and sig
//
// That line holds the checkpoint's seq, time and prev, and prev chains to
// every line before it, so one signature covers the whole file up to the
// checkpoint. A file that was closed ends with a checkpoint whose reason is
// "close".
//
// # What verification proves, and what not
//
// Verify detects a changed, removed, inserted or reordered line anywhere,
// and a cut at any point that is not just after a checkpoint. Cutting the
// file right after an earlier checkpoint, or replacing it whole with an
// older copy, leaves a valid trail: only a copy of the checkpoints kept
// elsewhere (a log shipper, Vault) can show that. Without the key (a nil
// Verifier), someone able to write the file can rewrite it whole.
//
// # Card data
//
// Writer.Append refuses (ErrCardData) a record in which any field holds 12
// to 19 digits that pass the Luhn check, whole or in groups separated by
// spaces or dashes, or a masked_pan that shows more than the first 6 and
// the last 4 digits. Note that this refuses an all-digit call or payment id
// of 12 to 19 digits one time in ten: ids should not be all digits.
package audit
