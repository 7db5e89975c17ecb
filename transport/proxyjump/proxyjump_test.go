package proxyjump

import (
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Hop
	}{
		{"bastion", []Hop{{Host: "bastion"}}},
		{"deploy@10.0.0.1", []Hop{{User: "deploy", Host: "10.0.0.1"}}},
		{"deploy@10.0.0.1:2222", []Hop{{User: "deploy", Host: "10.0.0.1", Port: 2222}}},
		{"ssh://deploy@bastion:2222", []Hop{{User: "deploy", Host: "bastion", Port: 2222}}},
		{"[2001:db8::1]:22", []Hop{{Host: "2001:db8::1", Port: 22}}},
		{"[2001:db8::1]", []Hop{{Host: "2001:db8::1"}}},
		{"2001:db8::1", []Hop{{Host: "2001:db8::1"}}},
		{"a@b@edge", []Hop{{User: "a@b", Host: "edge"}}},
		{"outer, ops@inner:23", []Hop{{Host: "outer"}, {User: "ops", Host: "inner", Port: 23}}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Parse(%q) = %+v; want %+v", tc.in, got, tc.want)
		}
		// What String writes reads back the same.
		again, err := Parse(Format(got))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(got) {
			t.Errorf("Parse(Format(%+v)) = %+v, %v", got, again, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "no jump host",
		"a,,b":              "an empty jump host between commas",
		"bastion,none":      "none stands alone",
		"@bastion":          "an empty user",
		"deploy@":           "no host",
		"bastion:ssh":       "ssh is not a port number",
		"bastion:70000":     "70000 is not a port number",
		"bastion;rm -rf /":  "is not [user@]host[:port]",
		"ssh://host/path":   "is not [user@]host[:port]",
		"us er@bastion":     "is not [user@]host[:port]",
		"[2001:db8::1]:x":   "x is not a port number",
		"$(reboot)@bastion": "is not [user@]host[:port]",
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v; want an error containing %q", in, err, want)
		}
	}
}

func TestIsNone(t *testing.T) {
	if !IsNone("none") || !IsNone("NONE") || IsNone("bastion") || IsNone("") {
		t.Error("IsNone")
	}
}
