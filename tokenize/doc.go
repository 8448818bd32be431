// Package tokenize turns card data into tokens with HashiCorp Vault, one
// way: the gateway's policy has no decrypt, and nothing here turns a token
// back into card data.
//
// Open-source Vault has no Transform engine, so tokens are built from
// transit and KV v2:
//
//   - The card number and expiry are encrypted with a transit key
//     (aes256-gcm96, not exportable, rotatable: old versions still
//     decrypt, new encryptions use the latest; Rewrap moves a token's data
//     to the latest version inside Vault).
//   - The lookup key is the transit HMAC-SHA256 of the card number under a
//     separate key at a pinned version. The token is made from it (the
//     digits the format does not keep, or an opaque token's bits, come
//     from SHA-256 of the format, the lookup key and a candidate number),
//     so the same card always gets the same token, and its record is
//     found at its own path, <kv mount>/data/<prefix>/tokens/<token>, with
//     no index. The record holds the two ciphertexts, the expiry's MAC
//     (HMAC under the lookup key of "exp:", the card number, ":" and the
//     expiry: a known card with a new expiry is told from one with the
//     same expiry without decrypting), brand, last four, format, lookup
//     key and creation time.
//   - A new card costs one KV write, with check-and-set 0: two concurrent
//     tokenizations of one card write the same path, and the loser reads
//     the winner's record. A candidate held by another card (its record
//     names another lookup key or format) is skipped for the next one,
//     the same for every try, so collisions are detected and the same card
//     still finds its token. A known card costs the HMAC call and one read.
//   - Tokens made before (random middle, any path) are found through the
//     old lookup index <prefix>/index/<format>/<hex hmac> → token, which
//     the gateway now only reads, for a card not found at its own path;
//     their records stay where they are, and are updated and rewrapped in
//     place. A store that Setup found without an index gets the marker
//     <prefix>/layout {"index": "none"}, and then the gateway does not look.
//   - Tokens: digits (same length as the card or 16-19, keeping the first 6
//     and/or last 4 card digits, and always failing the Luhn check so a
//     token can never pass for a card number) or opaque ("tok_" + 26
//     base32 characters). Chosen per merchant.
//   - Security codes never go to Vault: they go from the payment session
//     to the acquirer and are wiped.
//
// # Card data in memory
//
// Card data comes in as secret.Secret and is never made into a Go string
// here. A request that carries it (transit encrypt and hmac) has its JSON
// body written into one buffer made at its final size, with the card
// bytes in base64 (what transit expects), sent as is
// (Logical().WriteBytes, no JSON encoder) and wiped after each try.
// net/http copies it into the connection's write buffer, and the
// connection wipes what it wrote (wipingConn); for that, HTTPS connections
// are made here and speak HTTP/1.1, whose buffers the connection sees
// (HTTP/2 keeps request bodies in pooled buffers of its own). No answer
// from Vault holds card data: the gateway never decrypts.
//
// Outside this package's reach: the kernel's socket buffers, and Vault.
//
// # Failure
//
// Every call has a per-try timeout (Config.Timeout) and bounded retries
// with exponential backoff (Config.Retries, Config.Backoff). Vault down,
// sealed, answering 5xx or 429, or too slow gives an error for which
// errors.Is(err, ErrUnavailable) holds: the API answers 503. Nothing is
// ever written to disk as a fallback. Error texts name the operation and
// Vault's status, never card data.
//
// A Vault HA cluster (integrated storage) is given whole in
// Config.Addresses: after a try that found Vault unavailable, the client
// asks every address's sys/health and moves to the active node (200), or
// to a standby (429) while an election is on, before its next try. With
// enough retries (Config.Retries, Backoff) a call rides out the election
// that follows the death of the active node (5 to 10 s with Raft's
// default timings). A retried tokenization gives the same token, and the
// acquirer is only asked once a token is in hand, so a payment is never
// authorized twice for it.
//
// # Authentication
//
// Token (dev: a token file or VAULT_TOKEN) or AppRole (production: role id
// and a secret id read from a file at each login). The login is renewed
// with a LifetimeWatcher and redone when renewal ends. TLS is verified
// against Config.CAFile or the system roots; skipping verification
// (vault.insecure, VAULT_SKIP_VERIFY) is refused.
//
// A gateway must start, and mask calls, while Vault is down or sealed:
// Dial returns a LazyVault at once and logs in in the background, backing
// off from 1 s to 30 s between tries, and answers ErrUnavailable until it
// is in.
//
// Setup prepares a dev or test Vault; production operators apply the
// policy in configs/vault themselves (and write the layout marker on a new
// store: configs/vault/README.md).
package tokenize
