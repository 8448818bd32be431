// Package payment turns a captured card into a token and an
// authorization: the card goes to Vault (package tokenize) for a token,
// then to the acquirer (package psp) for an authorization. It is the one
// place where card data, Vault and the acquirer meet, so it is where to
// look when asking "where does the card number go at submit?".
//
// Service implements capture.Processor: capture stays free of Vault and
// ISO 8583, and tokenize and psp stay free of payment sessions.
//
// # What it must not do
//
// Card data is only lent: the Card's buffers belong to the capture
// session, which wipes them after Authorize whatever the outcome (PCI DSS
// 3.3.1). Service keeps no reference to them after a call returns, never
// turns them into a string, and never puts them in an error or a log.
package payment
