package api

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/capture"
)

// jsonNames lists the JSON member names of struct type t.
func jsonNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

type openapiDoc struct {
	OpenAPI    string                    `yaml:"openapi"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]struct {
			Type                 any            `yaml:"type"`
			Properties           map[string]any `yaml:"properties"`
			Required             []string       `yaml:"required"`
			AdditionalProperties *bool          `yaml:"additionalProperties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

func loadOpenAPI(t *testing.T) openapiDoc {
	t.Helper()
	var doc openapiDoc
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// TestOpenAPIRoutes: every route the server registers is in the document,
// and the document has no operation the server lacks.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	e := newEnv(t, testConfig(), Deps{})
	served := map[string]bool{}
	for _, rt := range e.srv.routes {
		op := strings.ToLower(rt.method) + " " + rt.path
		served[op] = true
		if _, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s is not in openapi.yaml", op)
		}
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	for p, item := range doc.Paths {
		for m, op := range item {
			if !slices.Contains(methods, m) {
				continue // parameters, summary, ...
			}
			if !served[m+" "+p] {
				t.Errorf("openapi.yaml has %s %s, which the server does not route", m, p)
			}
			op, _ := op.(map[string]any)
			if _, ok := op["operationId"]; !ok {
				t.Errorf("%s %s has no operationId", m, p)
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", m, p)
			}
		}
	}
}

// TestOpenAPISchemas: the schemas' property names are the JSON names of
// the Go types that are encoded and decoded.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]struct {
		t       reflect.Type
		request bool // decoded strictly: additionalProperties must be false
	}{
		"View":                {reflect.TypeFor[capture.View](), false},
		"FieldView":           {reflect.TypeFor[capture.FieldView](), false},
		"Result":              {reflect.TypeFor[capture.Result](), false},
		"Problem":             {reflect.TypeFor[Problem](), false},
		"Call":                {reflect.TypeFor[CallView](), false},
		"CallList":            {reflect.TypeFor[callList](), false},
		"WidgetToken":         {reflect.TypeFor[widgetTokenResponse](), false},
		"WebhookEvent":        {reflect.TypeFor[WebhookEvent](), false},
		"PaymentList":         {reflect.TypeFor[paymentList](), false},
		"Delivery":            {reflect.TypeFor[delivery](), false},
		"DeliveryList":        {reflect.TypeFor[deliveryList](), false},
		"PaymentRequest":      {reflect.TypeFor[capture.PaymentRequest](), true},
		"ResetRequest":        {reflect.TypeFor[resetRequest](), true},
		"WidgetTokenRequest":  {reflect.TypeFor[widgetTokenRequest](), true},
		"AgentTokenRequest":   {reflect.TypeFor[agentTokenRequest](), true},
		"AgentToken":          {reflect.TypeFor[agentTokenResponse](), false},
		"AvailabilityRequest": {reflect.TypeFor[availabilityRequest](), true},
		"AgentEvent":          {reflect.TypeFor[agents.Event](), false},
	}
	for name, want := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing from openapi.yaml", name)
			continue
		}
		var got []string
		for p := range s.Properties {
			got = append(got, p)
		}
		slices.Sort(got)
		if w := jsonNames(want.t); !slices.Equal(got, w) {
			t.Errorf("schema %s has properties %v, Go type %s encodes %v", name, got, want.t, w)
		}
		for _, r := range s.Required {
			if _, ok := s.Properties[r]; !ok {
				t.Errorf("schema %s requires %q, which it does not define", name, r)
			}
		}
		if want.request && (s.AdditionalProperties == nil || *s.AdditionalProperties) {
			t.Errorf("schema %s is decoded strictly: set additionalProperties: false", name)
		}
	}
	for name := range doc.Components.Schemas {
		if _, ok := types[name]; !ok && name != "EmptyRequest" {
			t.Errorf("schema %s is not checked against a Go type: add it to this test", name)
		}
	}
}
