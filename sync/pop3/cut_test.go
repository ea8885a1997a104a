package pop3

import (
	"errors"
	"io"
	"testing"
)

// A connection that ends in the middle of a RETR, before the terminating
// ".", is an error: nothing is committed for that message (the messages
// before it are), nothing is deleted, and the next run downloads it whole.
func TestFetchCutMidMessage(t *testing.T) {
	a := []string{"Subject: one", "", "body"}
	b := []string{"Subject: two", "", "a longer body", "second line", ".dot-stuffed line", "last line"}
	c := []string{"Subject: three", "", "body"}
	listing := fakeLogin + `
		C: UIDL
		S: +OK
		S: 1 a
		S: 2 b
		S: 3 c
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: 2 77
		S: 3 24
		S: .
	`
	const capa = "C: CAPA\nS: +OK\nS: USER\nS: .\n"
	for _, tc := range []struct{ name, cut string }{
		{"after a line", "S: Subject: two\nS:\nS: a longer body\nCLOSE\n"},
		{"inside a line", "S: Subject: two\nS:\nR: a longer bo\nCLOSE\n"},
		{"inside a line end", "S: Subject: two\nS:\nR: a longer body\\r\nCLOSE\n"},
		{"before the end", "S: Subject: two\nS:\nS: a longer body\nS: second line\nS: ..dot-stuffed line\nS: last line\nCLOSE\n"},
		{"inside the end", "S: Subject: two\nS:\nS: a longer body\nS: second line\nS: ..dot-stuffed line\nS: last line\nR: .\nCLOSE\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore(t)
			res, err := s.run(listing+capa+"C: RETR 1\nS: +OK\n"+sent(a...)+"C: RETR 2\nS: +OK\n"+tc.cut, false, 0)
			if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("cut run: err %v, want one wrapping io.ErrUnexpectedEOF", err)
			}
			if res == nil || res.New != 1 || res.Deleted != 0 {
				t.Fatalf("cut run: %+v", res)
			}
			checkStored(t, s, lfMsg(a...))
			if u := s.uidls(); len(u) != 1 || u["a"].MessageID == 0 {
				t.Errorf("identities after the cut: %v", u)
			}

			// The next run proves a (stored by the first run) with TOP,
			// then downloads b and c whole and deletes all three.
			res, err = s.run(listing+"C: TOP 1 0\nS: +OK\n"+sent(a[:2]...)+capa+
				"C: RETR 2\nS: +OK\n"+sent("Subject: two", "", "a longer body", "second line", "..dot-stuffed line", "last line")+
				"C: RETR 3\nS: +OK\n"+sent(c...)+`
				C: DELE 1
				S: +OK
				C: DELE 2
				S: +OK
				C: DELE 3
				S: +OK
				C: QUIT
				S: +OK
			`, false, 0)
			if err != nil || res.New != 2 || res.Deleted != 3 {
				t.Errorf("next run: %+v, %v", res, err)
			}
			checkStored(t, s, lfMsg(a...), lfMsg(b...), lfMsg(c...))
		})
	}
}

// The same with PIPELINING: RETR 3 is in flight when RETR 2 is cut.
func TestFetchCutMidMessagePipelined(t *testing.T) {
	a := []string{"Subject: one", "", "body"}
	b := []string{"Subject: two", "", "body two"}
	c := []string{"Subject: three", "", "body"}
	listing := fakeLogin + `
		C: UIDL
		S: +OK
		S: 1 a
		S: 2 b
		S: 3 c
		S: .
		C: LIST
		S: +OK
		S: 1 22
		S: 2 26
		S: 3 24
		S: .
	`
	const capa = "C: CAPA\nS: +OK\nS: PIPELINING\nS: .\n"
	s := newFakeStore(t)
	res, err := s.run(listing+capa+"C: RETR 1\nC: RETR 2\nC: RETR 3\nS: +OK\n"+sent(a...)+
		"S: +OK\nS: Subject: two\nR: \\r\\nbo\nCLOSE\n", false, 0)
	if !errors.Is(err, io.ErrUnexpectedEOF) || res == nil || res.New != 1 || res.Deleted != 0 {
		t.Fatalf("cut run: %+v, %v", res, err)
	}
	checkStored(t, s, lfMsg(a...))
	res, err = s.run(listing+"C: TOP 1 0\nS: +OK\n"+sent(a[:2]...)+capa+
		"C: RETR 2\nC: RETR 3\nS: +OK\n"+sent(b...)+"S: +OK\n"+sent(c...)+`
		C: DELE 1
		C: DELE 2
		C: DELE 3
		S: +OK
		S: +OK
		S: +OK
		C: QUIT
		S: +OK
	`, false, 0)
	if err != nil || res.New != 2 || res.Deleted != 3 {
		t.Errorf("next run: %+v, %v", res, err)
	}
	checkStored(t, s, lfMsg(a...), lfMsg(b...), lfMsg(c...))
}
