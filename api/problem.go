package api

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// problemBase prefixes every problem type: a URN, so that no one mistakes
// it for a page to fetch.
const problemBase = "urn:tonevault:problem:"

// The problem types this API uses, by slug, with their titles.
var problemTitles = map[string]string{
	"bad-request":            "The request is malformed",
	"unauthorized":           "Missing or invalid credentials",
	"forbidden":              "Not allowed with these credentials",
	"not-found":              "No such resource",
	"method-not-allowed":     "Method not allowed",
	"conflict":               "The resource is in a state that does not allow this",
	"payload-too-large":      "The request body is too large",
	"unsupported-media-type": "The request body must be application/json",
	"validation":             "The request is not valid",
	"idempotency-mismatch":   "The Idempotency-Key was used with a different request",
	"idempotency-required":   "An Idempotency-Key header is required",
	"rate-limited":           "Too many requests",
	"unavailable":            "Temporarily unavailable",
	"not-configured":         "No payment processor is configured",
	"internal":               "Internal error",
}

// writeProblem answers with a problem document. detail must never hold
// card data or a credential; the callers only pass fixed texts and
// validation messages about non-card fields.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, slug, detail string) {
	p := Problem{
		Type:     problemBase + slug,
		Title:    problemTitles[slug],
		Status:   status,
		Detail:   detail,
		Instance: r.URL.Path,
	}
	if containsCardNumber(p.Instance) || len(p.Instance) > 512 {
		// The path is the client's text: never send a card number back.
		// The route's pattern still says where it happened.
		_, p.Instance, _ = strings.Cut(r.Pattern, " ")
		if p.Instance == "" {
			p.Instance = "/"
		}
	}
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, append(body, '\n'))
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
