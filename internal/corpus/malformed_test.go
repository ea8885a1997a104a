package corpus

import (
	"bytes"
	"testing"
)

// TestMalformed: at least 30 kinds, unique names, the same bytes each
// call, markers where promised, and the duplicate Message-IDs differ.
func TestMalformed(t *testing.T) {
	a, b := Malformed(), Malformed()
	if len(a) < 30 {
		t.Fatalf("%d kinds, want at least 30", len(a))
	}
	names := map[string]bool{}
	raws := map[string]string{}
	for i, k := range a {
		if names[k.Name] {
			t.Errorf("kind %q twice", k.Name)
		}
		names[k.Name] = true
		if !bytes.Equal(k.Raw, b[i].Raw) {
			t.Errorf("%s: not deterministic", k.Name)
		}
		if k.Marker != "" && !bytes.Contains(k.Raw, []byte(k.Marker)) {
			t.Errorf("%s: marker %q not in the message", k.Name, k.Marker)
		}
		if prev, ok := raws[string(k.Raw)]; ok {
			t.Errorf("%s: same bytes as %s", k.Name, prev)
		}
		raws[string(k.Raw)] = k.Name
	}
	dups := 0
	for _, m := range MalformedMessages("INBOX") {
		if m.MessageID == DupMessageID {
			dups++
		}
	}
	if dups != 3 {
		t.Errorf("%d messages with the duplicate Message-ID, want 3", dups)
	}
}
