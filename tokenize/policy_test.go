package tokenize

import (
	"testing"

	"github.com/tonevault/tonevault/test/vaultserver"
)

// TestPolicyLeastPrivilege: a token with only the gateway policy does its
// job (every other test runs as such a token) and is denied everything
// else.
func TestPolicyLeastPrivilege(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	ctx := testCtx(t)
	root := e.srv.Client
	// Objects the gateway must not reach: another KV path, another
	// transit key.
	if _, err := root.Logical().Write(e.cfg.KV.Mount+"/data/other/secret", map[string]any{"data": map[string]any{"x": "y"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write(e.cfg.Transit.Mount+"/keys/someone-else", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.v.Tokenize(ctx, sec("6011111111111117"), sec("1230"), "discover", "m")
	if err != nil {
		t.Fatal(err)
	}
	tm, kv := e.cfg.Transit.Mount, e.cfg.KV.Mount
	rec, err := root.Logical().Read(kv + "/data/" + e.cfg.KV.Prefix + "/tokens/" + tok.Value)
	if err != nil || rec == nil {
		t.Fatalf("read the record as root: %v", err)
	}
	storedPAN, _ := rec.Data["data"].(map[string]any)["pan"].(string)
	b64 := map[string]any{"plaintext": "dGVzdA==", "input": "dGVzdA=="}
	denied := []struct {
		name, op, path string
		data           map[string]any
	}{
		{"read other kv path", "read", kv + "/data/other/secret", nil},
		{"write other kv path", "write", kv + "/data/other/secret", map[string]any{"data": map[string]any{"x": "z"}}},
		{"list tokens", "list", kv + "/metadata/" + e.cfg.KV.Prefix + "/tokens", nil},
		{"delete a token", "delete", kv + "/metadata/" + e.cfg.KV.Prefix + "/tokens/" + tok.Value, nil},
		{"soft-delete a token", "delete", kv + "/data/" + e.cfg.KV.Prefix + "/tokens/" + tok.Value, nil},
		{"write an index entry", "write", kv + "/data/" + e.cfg.KV.Prefix + "/index/opaque/00", map[string]any{"data": map[string]any{"token": tok.Value}}},
		{"write the layout marker", "write", kv + "/data/" + e.cfg.KV.Prefix + "/" + layoutKey, map[string]any{"data": map[string]any{"index": "none"}}},
		{"read elsewhere under the prefix", "read", kv + "/data/" + e.cfg.KV.Prefix + "/other", nil},
		{"write elsewhere under the prefix", "write", kv + "/data/" + e.cfg.KV.Prefix + "/other", map[string]any{"data": map[string]any{"x": "y"}}},
		{"read token metadata", "read", kv + "/metadata/" + e.cfg.KV.Prefix + "/tokens/" + tok.Value, nil},
		{"destroy token versions", "write", kv + "/destroy/" + e.cfg.KV.Prefix + "/tokens/" + tok.Value, map[string]any{"versions": []int{1}}},
		{"kv config", "write", kv + "/config", map[string]any{"max_versions": 5}},
		{"list audit anchors", "list", kv + "/metadata/" + e.cfg.KV.Prefix + "/" + AuditAnchorDir, nil},
		{"delete an audit anchor", "delete", kv + "/metadata/" + e.cfg.KV.Prefix + "/" + AuditAnchorDir + "/t", nil},
		{"export card key", "read", tm + "/export/encryption-key/" + e.cfg.Transit.CardKey, nil},
		{"export hmac key", "read", tm + "/export/hmac-key/" + e.cfg.Transit.HMACKey, nil},
		{"export signing key", "read", tm + "/export/signing-key/" + e.cfg.Transit.SigningKey, nil},
		{"backup card key", "read", tm + "/backup/" + e.cfg.Transit.CardKey, nil},
		{"read card key", "read", tm + "/keys/" + e.cfg.Transit.CardKey, nil},
		{"list keys", "list", tm + "/keys", nil},
		{"make card key exportable", "write", tm + "/keys/" + e.cfg.Transit.CardKey + "/config", map[string]any{"exportable": true}},
		{"delete card key", "delete", tm + "/keys/" + e.cfg.Transit.CardKey, nil},
		{"rotate card key", "write", tm + "/keys/" + e.cfg.Transit.CardKey + "/rotate", nil},
		{"create a key", "write", tm + "/keys/gateway-made", map[string]any{"type": "aes256-gcm96"}},
		{"encrypt with another key", "write", tm + "/encrypt/someone-else", b64},
		{"decrypt with another key", "write", tm + "/decrypt/someone-else", map[string]any{"ciphertext": "vault:v1:AAAA"}},
		{"decrypt a card number", "write", tm + "/decrypt/" + e.cfg.Transit.CardKey, map[string]any{"ciphertext": storedPAN}},
		{"wrap data", "write", "sys/wrapping/wrap", map[string]any{"cvv": "NzM3"}},
		{"hmac with card key", "write", tm + "/hmac/" + e.cfg.Transit.CardKey, b64},
		{"sign with card key", "write", tm + "/sign/" + e.cfg.Transit.CardKey, b64},
		{"encrypt with signing key", "write", tm + "/encrypt/" + e.cfg.Transit.SigningKey, b64},
		{"datakey from card key", "write", tm + "/datakey/plaintext/" + e.cfg.Transit.CardKey, nil},
		{"random bytes", "write", tm + "/random/32", nil},
		{"sys/policy", "read", "sys/policy/" + PolicyName, nil},
		{"write policy", "write", "sys/policies/acl/" + PolicyName, map[string]any{"policy": `path "*" { capabilities = ["sudo"] }`}},
		{"sys/mounts", "read", "sys/mounts", nil},
		{"mount", "write", "sys/mounts/evil", map[string]any{"type": "kv"}},
		{"sys/auth", "read", "sys/auth", nil},
		{"enable auth", "write", "sys/auth/evil", map[string]any{"type": "userpass"}},
		{"approle role", "read", "auth/" + e.cfg.Auth.Mount + "/role/" + RoleName, nil},
		{"approle secret id", "write", "auth/" + e.cfg.Auth.Mount + "/role/" + RoleName + "/secret-id", nil},
		{"create token", "write", "auth/token/create", map[string]any{"policies": []string{"root"}}},
		{"seal", "write", "sys/seal", nil},
		{"audit devices", "read", "sys/audit", nil},
		// (sys/wrapping/lookup and rewrap are not in the list: Vault lets
		// any holder of a wrapping token use them, whatever the policy.)
	}
	c := e.v.client
	for _, d := range denied {
		t.Run(d.name, func(t *testing.T) {
			var err error
			switch d.op {
			case "read":
				_, err = c.Logical().ReadWithContext(ctx, d.path)
			case "list":
				_, err = c.Logical().ListWithContext(ctx, d.path)
			case "delete":
				_, err = c.Logical().DeleteWithContext(ctx, d.path)
			default:
				_, err = c.Logical().WriteWithContext(ctx, d.path, d.data)
			}
			if !isStatus(err, 403) {
				t.Fatalf("%s %s: %v, want 403 permission denied", d.op, d.path, err)
			}
		})
	}
	// What the audit trail's Vault anchor does: write a trail's latest
	// checkpoint, overwrite it, read it back.
	anchor := kv + "/data/" + e.cfg.KV.Prefix + "/" + AuditAnchorDir + "/t"
	for i := range 2 {
		if _, err := c.Logical().WriteWithContext(ctx, anchor, map[string]any{"data": map[string]any{"seq": i}}); err != nil {
			t.Fatalf("write the audit anchor: %v", err)
		}
	}
	if _, err := c.Logical().ReadWithContext(ctx, anchor); err != nil {
		t.Fatalf("read the audit anchor: %v", err)
	}
	// And the gateway's own card data cannot be exported in any way: the
	// key itself says so.
	s, err := root.Logical().Read(tm + "/keys/" + e.cfg.Transit.CardKey)
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["exportable"] != false || s.Data["allow_plaintext_backup"] != false || s.Data["type"] != "aes256-gcm96" {
		t.Fatalf("card key: exportable %v, plaintext backup %v, type %v", s.Data["exportable"], s.Data["allow_plaintext_backup"], s.Data["type"])
	}
}
