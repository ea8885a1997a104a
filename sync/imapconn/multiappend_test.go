package imapconn

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/imapscript"
)

func TestParseAppendUID(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []uint32
	}{
		{"[APPENDUID 38505 3955] APPEND completed", []uint32{3955}},
		{"[APPENDUID 1 2026:2029] Append completed.", []uint32{2026, 2027, 2028, 2029}},
		{"[APPENDUID 1 7,9:10,3] x", []uint32{7, 9, 10, 3}},
		{"Append completed.", nil},
		{"[APPENDUID 1 0] x", nil},
		{"[APPENDUID 1 5:3] x", nil},
		{"[APPENDUID 1] x", nil},
		// Hostile sets are refused before anything is expanded.
		{"[APPENDUID 1 4294967295] x", []uint32{4294967295}},
		{"[APPENDUID 1 4294967294:4294967295] x", []uint32{4294967294, 4294967295}},
		{"[APPENDUID 1 1:4294967295] x", nil},
		{"[APPENDUID 1 1:1000000,1:1000000,1:1000000] x", nil},
		{"[APPENDUID 1 1:7] x", nil},                       // more than the 6 messages appended
		{"[APPENDUID 1 1:6,7] x", nil},                     // more than max
		{"[APPENDUID 1 1:4294967295,1:4294967295] x", nil}, // far more
		{"[APPENDUID 1 4294967290:4294967295] x", []uint32{4294967290, 4294967291, 4294967292, 4294967293, 4294967294, 4294967295}},
	} {
		got, ok := parseAppendUID(tc.text, 6)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("parseAppendUID(%q) = %v, %v; want %v", tc.text, got, ok, tc.want)
		}
	}
}

func TestQuoteMailbox(t *testing.T) {
	for name, want := range map[string]string{
		"INBOX":              `"INBOX"`,
		"Entwürfe":           `"Entw&APw-rfe"`,
		"Lists/Go":           `"Lists/Go"`,
		"Tom & Jerry":        `"Tom &- Jerry"`,
		`say "hi"\`:          `"say \"hi\"\\"`,
		"日本語":                `"&ZeVnLIqe-"`,
		"~peter/mail/台北/日本語": `"~peter/mail/&U,BTFw-/&ZeVnLIqe-"`, // RFC 3501's example
	} {
		if got := quoteMailbox(name); got != want {
			t.Errorf("quoteMailbox(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestUploaderScripted(t *testing.T) {
	caps := "* CAPABILITY IMAP4rev1 LITERAL+ MULTIAPPEND UIDPLUS"
	up := &Uploader{}
	up.setConn(imapscript.Server(t, "* OK ready", func(cmd string) []string {
		switch {
		case strings.HasPrefix(cmd, "APPEND \"Missing\""):
			return []string{"TAG NO [TRYCREATE] Mailbox doesn't exist"}
		case strings.HasPrefix(cmd, "APPEND"):
			// an untagged answer with a literal in it, then the result
			return []string{"* 3 FETCH (BODY[] {5}", "hello)", "TAG OK [APPENDUID 7 10:11] done"}
		case cmd == "CAPABILITY":
			return []string{caps, "TAG OK done"}
		case cmd == "LOGOUT":
			return []string{"* BYE", "TAG OK bye"}
		}
		return []string{"TAG BAD what?"}
	}))
	if _, err := up.readLine(); err != nil {
		t.Fatal(err)
	}
	up.uidPlus = true
	msg := func(body string) UploadMsg {
		return UploadMsg{Flags: []imap.Flag{imap.FlagSeen}, Date: time.Unix(1772445600, 0).UTC(), Size: int64(len(body)),
			Write: func(w io.Writer) error { _, err := io.WriteString(w, body); return err }}
	}
	ctx := context.Background()
	uids, err := up.AppendMany(ctx, "Entwürfe", []UploadMsg{msg("a\r\n"), msg("bb\r\n")})
	if err != nil || !slices.Equal(uids, []uint32{10, 11}) {
		t.Fatalf("AppendMany = %v, %v; want [10 11]", uids, err)
	}
	_, err = up.AppendMany(ctx, "Missing", []UploadMsg{msg("a\r\n")})
	var refused *imap.Error
	if !errors.As(err, &refused) || refused.Type != imap.StatusResponseTypeNo {
		t.Fatalf("a refused APPEND: err = %v, want an *imap.Error NO", err)
	}
	// The connection is still good after a refusal.
	if uids, err := up.AppendMany(ctx, "INBOX", []UploadMsg{msg("c\r\n"), msg("d\r\n")}); err != nil || len(uids) != 2 {
		t.Fatalf("after a refusal: %v, %v", uids, err)
	}
	up.Close()
	if _, err := up.AppendMany(ctx, "INBOX", []UploadMsg{msg("e\r\n")}); err == nil {
		t.Error("AppendMany after Close succeeded")
	}
}

func TestUploaderBye(t *testing.T) {
	up := &Uploader{}
	up.setConn(imapscript.Server(t, "* OK ready", func(cmd string) []string {
		return []string{"* BYE shutting down"}
	}))
	up.readLine()
	_, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: 1, Write: func(w io.Writer) error {
		_, err := w.Write([]byte("x"))
		return err
	}}})
	if err == nil || !errors.Is(err, ErrConnLost) {
		t.Fatalf("after BYE: err = %v, want a connection error", err)
	}
}

// TestUploaderShortMessage: a message whose file fails mid-way (deleted
// or cut while it is being sent) gives up the connection at once; it used
// to leave the server waiting for the rest of the literal and the upload
// waiting for an answer until the 2-minute timeout.
func TestUploaderShortMessage(t *testing.T) {
	up := &Uploader{}
	up.setConn(imapscript.Server(t, "* OK ready", func(cmd string) []string {
		return []string{"TAG OK done"}
	}))
	up.readLine()
	gone := errors.New("message file vanished")
	begin := time.Now()
	_, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: 100, Write: func(w io.Writer) error {
		w.Write([]byte("only part of it"))
		return gone
	}}})
	if !errors.Is(err, gone) {
		t.Fatalf("err = %v, want the file's error", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("AppendMany took %s: it waited for an answer to a command it never finished", d)
	}
	if _, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: 1, Write: func(w io.Writer) error {
		_, err := w.Write([]byte("x"))
		return err
	}}}); err == nil {
		t.Fatal("the connection was used again after a command cut short")
	}
}

func TestCapabilityCode(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string // nil: no code
	}{
		{"[CAPABILITY IMAP4rev1 literal+ MULTIAPPEND] Logged in", []string{"IMAP4REV1", "LITERAL+", "MULTIAPPEND"}},
		{"[capability IMAP4rev1] ready", []string{"IMAP4REV1"}},
		{"Logged in", nil},
		{"[ALERT] CAPABILITY LITERAL+", nil},
		{"[CAPABILITY LITERAL+", nil},
		{"[CAPABILITYX] x", nil},
		{"", nil},
	} {
		got := capabilityCode(tc.text)
		var names []string
		for c := range got {
			names = append(names, c)
		}
		slices.Sort(names)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if (got == nil) != (tc.want == nil) || !slices.Equal(names, want) {
			t.Errorf("capabilityCode(%q) = %v, want %v", tc.text, names, tc.want)
		}
	}
}

// TestUploaderPipelined: a second folder's APPEND goes out while the
// first's answer is still awaited (the server answers the first only
// once the second came), and each caller gets its own answer when the
// server answers them the other way round (the first refused, the
// second stored).
func TestUploaderPipelined(t *testing.T) {
	up := &Uploader{uidPlus: true}
	up.setConn(imapscript.Server(t, "* OK ready", func(cmd string) []string {
		switch {
		case strings.HasPrefix(cmd, `APPEND "First"`):
			return nil // answered with the second
		case strings.HasPrefix(cmd, `APPEND "Second"`):
			return []string{"TAG OK [APPENDUID 9 20] stored", "U1 NO [OVERQUOTA] refused"}
		}
		return []string{"TAG BAD what?"}
	}))
	if _, err := up.readLine(); err != nil {
		t.Fatal(err)
	}
	msg := UploadMsg{Size: 3, Write: func(w io.Writer) error { _, err := io.WriteString(w, "a\r\n"); return err }}
	type result struct {
		uids []uint32
		err  error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	sentFirst := make(chan struct{})
	go func() {
		uids, err := up.AppendMany(context.Background(), "First", []UploadMsg{{Size: 3, Write: func(w io.Writer) error {
			defer close(sentFirst)
			return msg.Write(w)
		}}})
		first <- result{uids, err}
	}()
	<-sentFirst
	go func() {
		uids, err := up.AppendMany(context.Background(), "Second", []UploadMsg{msg})
		second <- result{uids, err}
	}()
	var r1, r2 result
	for _, c := range []struct {
		ch <-chan result
		r  *result
	}{{first, &r1}, {second, &r2}} {
		select {
		case *c.r = <-c.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no answers: the second APPEND waited for the answer to the first")
		}
	}
	var no *imap.Error
	if !errors.As(r1.err, &no) || no.Type != imap.StatusResponseTypeNo {
		t.Errorf("first: %v, %v; want the server's NO", r1.uids, r1.err)
	}
	if r2.err != nil || !slices.Equal(r2.uids, []uint32{20}) {
		t.Errorf("second: %v, %v; want [20]", r2.uids, r2.err)
	}
}

// TestUploaderOthersLoseTheConnection: when a message file fails while
// its APPEND is written, that caller gets the file's error, and another
// folder's APPEND already under way on the connection ends as lost
// (ErrConnLost: whether the server stored it is unknown), not with the
// other folder's error.
func TestUploaderOthersLoseTheConnection(t *testing.T) {
	up := &Uploader{uidPlus: true}
	up.setConn(imapscript.Server(t, "* OK ready", func(cmd string) []string {
		return nil // no answers: the first APPEND stays under way
	}))
	if _, err := up.readLine(); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	other := make(chan error, 1)
	go func() {
		_, err := up.AppendMany(context.Background(), "Archive", []UploadMsg{{Size: 3, Write: func(w io.Writer) error {
			defer close(sent)
			_, err := io.WriteString(w, "a\r\n")
			return err
		}}})
		other <- err
	}()
	<-sent
	gone := errors.New("message file vanished")
	_, err := up.AppendMany(context.Background(), "INBOX", []UploadMsg{{Size: 100, Write: func(w io.Writer) error {
		io.WriteString(w, "only part")
		return gone
	}}})
	if !errors.Is(err, gone) {
		t.Fatalf("the failing upload: err = %v, want the file's error", err)
	}
	select {
	case err := <-other:
		if !errors.Is(err, ErrConnLost) || errors.Is(err, gone) {
			t.Fatalf("the other folder's upload: err = %v, want the connection lost, not the other file's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other folder's upload still waits")
	}
}
