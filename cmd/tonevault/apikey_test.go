package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/api"
)

func TestAPIKey(t *testing.T) {
	var out, errb bytes.Buffer
	if code := apiKey([]string{"--name", "crm-prod"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	key := regexp.MustCompile(`tvk_[A-Za-z0-9_-]{43}`).FindString(out.String())
	if key == "" {
		t.Fatalf("no key in %q", out.String())
	}
	if !strings.Contains(out.String(), `hash: "`+api.HashKey(key)+`"`) || !strings.Contains(out.String(), "name: crm-prod") {
		t.Errorf("config snippet missing: %q", out.String())
	}
	// --hash gives the same hash for the key read back.
	out.Reset()
	if code := apiKey([]string{"--hash"}, strings.NewReader(key+"\n"), &out, &errb); code != 0 || strings.TrimSpace(out.String()) != api.HashKey(key) {
		t.Errorf("--hash: %d %q", code, out.String())
	}
	// Two keys differ.
	var out2 bytes.Buffer
	apiKey([]string{"--name", "x"}, nil, &out2, &errb)
	if strings.Contains(out2.String(), key) {
		t.Error("the same key twice")
	}
	for _, args := range [][]string{{}, {"--name", "has space"}, {"--name", "a", "extra"}, {"--bogus"}} {
		if code := apiKey(args, nil, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := apiKey([]string{"--hash"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("--hash with no input: exit %d", code)
	}
}
