// Package oplog builds ToneVault's operational logger: zap writing JSON
// lines, through an encoder that masks card numbers, and a log/slog bridge
// so libraries that log through slog (sipgo) go through the same masking.
//
// The masking is defence in depth. Card data never reaches a log on
// purpose (DESIGN.md invariant 4); this catches the mistakes. Every run of
// 12 to 19 digits that passes the Luhn check, whole ("4111111111111111")
// or in groups separated by 1 to 3 spaces or dashes as people type card
// numbers ("4111 1111 1111 1111"), is rewritten to its first 6 and last 4
// digits with the digits between them replaced by '*'
// ("411111******1111", "4111 11** **** 1111"). Digit runs that fail the
// Luhn check (phone numbers, most order ids) are left alone; one in ten
// 12-19 digit numbers that are not card numbers pass it and are masked too.
//
// What is masked: the message, the logger name, the stack trace, every
// string field (zap.String, zap.Stringer, zap.ByteString, zap.Error with
// its verbose form and causes, and strings inside zap.Object, zap.Array,
// zap.Dict, zap.Inline, slog groups and zap.Any/zap.Reflect values, whose
// JSON is rewritten only when it holds a card number, in which case map and
// struct keys come out sorted), the bytes of zap.Binary before they are
// base64-encoded, and integer fields (zap.Int, zap.Int64, zap.Uint64,
// ...) whose decimal form is a card number, which are then written as a
// masked string. Not masked: field keys, floats, and digits outside ASCII.
//
// zap's Config.Build cannot wrap an encoder, so the core is built here by
// hand: NewCore, or New for a *zap.Logger.
//
// # What it must not do
//
// It is not the audit trail (package audit): nothing a compliance user
// relies on goes only here, and nothing here is signed or chained. It
// never decides what to log; callers must still keep card data out.
package oplog
