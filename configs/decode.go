package configs

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decode reads one YAML document onto c. It walks the document itself
// instead of handing it to yaml.v3 whole, for two reasons: yaml.v3 drops
// the position of an error a value's UnmarshalText returns (a bad address
// would be reported without its key or line), and it checks unknown keys
// only at the top of a Decoder, not inside lists and maps of structs. Here
// every error names its key path and line: "media.bind_ip (line 31): …".
//
// On top of what c holds, a key that is given replaces its value; lists
// and maps given replace the old ones whole.
func decode(data []byte, c *Config) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: nothing changed
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return decodeValue(doc.Content[0], reflect.ValueOf(c).Elem(), "")
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
)

// decodeValue decodes n onto v, which is settable; path is n's key path.
func decodeValue(n *yaml.Node, v reflect.Value, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	pt := reflect.PointerTo(v.Type())
	if pt.Implements(textUnmarshaler) || pt.Implements(yamlUnmarshaler) {
		return decodeLeaf(n, v, path)
	}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	switch v.Kind() {
	case reflect.Struct:
		if null {
			return nil // "capture:" with nothing under it changes nothing
		}
		if n.Kind != yaml.MappingNode {
			return errAt(path, n, "want a mapping of keys")
		}
		fields := yamlFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			idx, ok := fields[k.Value]
			if !ok {
				return errAt(key, k, "unknown key")
			}
			if seen[k.Value] {
				return errAt(key, k, "given twice")
			}
			seen[k.Value] = true
			if err := decodeValue(val, v.FieldByIndex(idx), key); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if null {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return errAt(path, n, "want a list")
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decodeValue(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if null {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return errAt(path, n, "want a mapping")
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := fmt.Sprintf("%s[%q]", path, k.Value)
			kv := reflect.New(v.Type().Key()).Elem()
			if err := decodeLeaf(k, kv, key); err != nil {
				return err
			}
			if m.MapIndex(kv).IsValid() {
				return errAt(key, k, "given twice")
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(val, ev, key); err != nil {
				return err
			}
			m.SetMapIndex(kv, ev)
		}
		v.Set(m)
		return nil
	}
	return decodeLeaf(n, v, path)
}

// decodeLeaf lets yaml.v3 decode a value it can take whole: a scalar, a
// time.Duration, a type with its own UnmarshalText.
func decodeLeaf(n *yaml.Node, v reflect.Value, path string) error {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) {
			// "line 3: cannot unmarshal !!str `x` into int": the line
			// is given below.
			msg = strings.Join(te.Errors, "; ")
			if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
				msg = rest
			}
		}
		return errAt(path, n, strings.TrimPrefix(msg, "yaml: "))
	}
	return nil
}

// yamlFields maps a struct's YAML keys to its fields. A field without a
// yaml tag, or tagged "-", cannot be set from YAML: it is wiring, such as
// a logger.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f.Index
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func errAt(path string, n *yaml.Node, msg string) error {
	if path == "" {
		path = "top level"
	}
	return fmt.Errorf("%s (line %d): %s", path, n.Line, msg)
}
