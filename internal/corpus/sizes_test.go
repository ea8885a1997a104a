package corpus

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestRealSizes checks the size mix of Options.RealSizes over 3000
// messages (1500 with -short): text sizes around 6 KB (most 2-20 KB), the shares of
// multipart/alternative and of messages with attachments, the attachments'
// sizes, the average, and that the headers are the default corpus's.
func TestRealSizes(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 1500
	}
	opts := Options{RealSizes: true}
	var total, alt, attached int
	var text []int
	err := Each(9, n, opts, func(m Message) error {
		total += len(m.Raw)
		def := At(9, len(text)+alt+attached, Options{})
		if m.MessageID != def.MessageID || m.Folder != def.Folder || !slices.Equal(m.Flags, def.Flags) || !m.Date.Equal(def.Date) {
			t.Fatalf("message %s: folder, flags or date differ from the default corpus's", m.MessageID)
		}
		hdr, _, _ := bytes.Cut(m.Raw, []byte("\r\n\r\n"))
		switch {
		case bytes.Contains(hdr, []byte("multipart/alternative")):
			alt++
		case bytes.Contains(hdr, []byte("multipart/mixed")):
			attached++
			k := bytes.Count(m.Raw, []byte("Content-Disposition: attachment"))
			if k < 1 || k > 2 {
				t.Errorf("%s: %d attachments", m.MessageID, k)
			}
			if len(m.Raw) < 100<<10*4/3 || len(m.Raw) > 2*(5<<20)*4/3+300<<10 {
				t.Errorf("%s: %d bytes with attachments", m.MessageID, len(m.Raw))
			}
		default:
			text = append(text, len(m.Raw)-len(hdr))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(text)
	med := text[len(text)/2]
	in := 0
	for _, s := range text {
		if s >= 2000 && s <= 20000 {
			in++
		}
	}
	avg := total / n
	t.Logf("average %d bytes, text median %d, %d%% of texts 2-20 KB, %d alternative, %d with attachments", avg, med, 100*in/len(text), alt, attached)
	if med < 5000 || med > 8000 {
		t.Errorf("median text body %d bytes, want about 6 KB", med)
	}
	if in < len(text)*8/10 {
		t.Errorf("%d of %d text bodies 2-20 KB, want most", in, len(text))
	}
	if alt < n*6/100 || alt > n*10/100 {
		t.Errorf("%d of %d multipart/alternative, want about 8%%", alt, n)
	}
	if attached < n*2/100 || attached > n*4/100 {
		t.Errorf("%d of %d with attachments, want about 3%%", attached, n)
	}
	if avg < 60<<10 || avg > 100<<10 {
		t.Errorf("average %d bytes, want about 79 KB", avg)
	}
	// Deterministic: the same message again.
	if a, b := At(9, 17, opts), At(9, 17, opts); !bytes.Equal(a.Raw, b.Raw) || strings.Contains(string(a.Raw), "\n\n") {
		t.Errorf("message 17 not deterministic or has bare LF")
	}
}
