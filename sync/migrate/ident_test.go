package migrate

import (
	"errors"
	"testing"
	"time"

	"github.com/postfach/postfach/maildir"
)

func TestMatch(t *testing.T) {
	d1 := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	d2 := d1.Add(time.Second)
	src := func(msgID string, date time.Time, size int64, flags maildir.Flags, kw ...string) srcRec {
		return srcRec{id: hashID(msgID, date), date: date.Unix(), dated: true, size: size, flags: flags, kw: kwHash(kw)}
	}
	dst := func(msgID string, date time.Time, size int64, flags maildir.Flags, kw ...string) destRec {
		return destRec{id: hashID(msgID, date), date: date.Unix(), size: size, flags: flags, kw: kwHash(kw)}
	}
	noCRLF := func(int) (int64, error) { return 0, errors.New("not needed") }

	// Multiplicity: two identical source messages need two copies.
	a1, a2 := src("a@x", d1, 100, maildir.FlagSeen), src("a@x", d1, 100, maildir.FlagSeen)
	r := match([]srcRec{a1, a2}, []destRec{dst("a@x", d1, 100, maildir.FlagSeen)}, noCRLF)
	if len(r.missing) != 1 || r.extra != 0 || r.differ != 0 {
		t.Errorf("two copies, one there: %+v", r)
	}
	r = match([]srcRec{a1, a2}, []destRec{dst("a@x", d1, 100, maildir.FlagSeen), dst("a@x", d2, 100, 0)}, noCRLF)
	if len(r.missing) != 0 || r.extra != 0 || r.differ != 1 {
		t.Errorf("two copies, both there (one with other flags and date): %+v", r)
	}
	// The Message-ID with another size is another message; the same size
	// under another Message-ID too.
	r = match([]srcRec{a1}, []destRec{dst("a@x", d1, 101, 0), dst("b@x", d1, 100, 0)},
		func(int) (int64, error) { return 100, nil })
	if len(r.missing) != 1 || r.extra != 2 || r.dest != 2 || r.bytes != 201 {
		t.Errorf("other size, other id: %+v", r)
	}
	// Without Message-ID: internal date and size.
	n1, n2 := src("", d1, 50, 0), src("", d2, 50, 0)
	r = match([]srcRec{n1, n2}, []destRec{dst("", d2, 50, 0)}, noCRLF)
	if len(r.missing) != 1 || r.missing[0] != 0 || r.extra != 0 {
		t.Errorf("no Message-ID: %+v", r)
	}
	// A recorded size that is not the size as sent (bare CR or LF in the
	// original): the size of the file as sent matches.
	odd := src("odd@x", d1, 200, 0, "$Label1")
	r = match([]srcRec{odd}, []destRec{dst("odd@x", d1, 203, 0, "$label1")},
		func(int) (int64, error) { return 203, nil })
	if len(r.missing) != 0 || r.extra != 0 || r.differ != 0 {
		t.Errorf("CRLF size: %+v", r)
	}
	// A stored file smaller than the recorded size (a download cut short)
	// is not the message, even where the destination has a copy of its
	// size (what an upload of it left): missing, and that copy is extra.
	cut := src("cut@x", d1, 11020092, 0)
	r = match([]srcRec{cut}, []destRec{dst("cut@x", d1, 1014557, 0)},
		func(int) (int64, error) { return 1014557, nil })
	if len(r.missing) != 1 || r.extra != 1 {
		t.Errorf("truncated file: %+v", r)
	}
	// A keyword's case does not matter; its absence does.
	r = match([]srcRec{odd}, []destRec{dst("odd@x", d1, 200, 0)}, noCRLF)
	if r.differ != 1 {
		t.Errorf("missing keyword: %+v", r)
	}
}
