// Package e2e runs ToneVault's payment flow end to end with real parts:
// the tonevault binary (built once per test run and started as a
// subprocess with a config on ephemeral loopback ports), a real Vault
// server (test/vaultserver), the ISO 8583 acquirer simulator (psp/sim), a
// SIP customer that types the card (sip/caller) and an agent that records
// every RTP packet it gets (sip/caller/callertest), driven through the
// REST API and, in one test, the agent widget in headless Chromium.
//
// Every test greps everything it captured (gateway logs, API bodies, SSE
// events, the audit trail, the simulator's log, the caller's progress) for
// the card data it typed; see leak_test.go for how that search avoids
// false positives on masks, tokens and timestamps. One test also dumps
// the running gateway's memory with gdb's gcore after its payments ended
// and searches the dump (coredump_test.go); a copy it finds is located in
// the gateway's memory (heap object, goroutine stack, freed stack) by gdb
// and shown with the card data masked (coremap_test.go). Others break a
// part in the middle of a payment and check that nothing is lost: the
// audit trail's disk or signer (auditfail_test.go), Vault stopped, sealed
// or killed, the acquirer dropping the connection or answering garbage,
// the gateway killed mid-call and mid-authorization (faults_test.go,
// reversal_test.go, restart_test.go).
//
// Run: TONEVAULT_REQUIRE_TOOLS=1 go test -count=1 -v ./test/e2e
//
// Environment: TONEVAULT_REQUIRE_TOOLS=1 fails instead of skipping when
// the Vault server, Chromium, SpanDSP, multimon-ng or gcore is missing;
// TONEVAULT_E2E_RACE=1 builds the gateway with -race;
// TONEVAULT_E2E_DEBUG=1 prints the text around a leak and the gateway's
// log of a failed test (both may hold the test card data); TONEVAULT_CHROMIUM overrides /usr/bin/chromium.
package e2e
