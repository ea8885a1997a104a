package imapconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/nethint"
)

// TestUploaderDovecot: the MULTIAPPEND client against Dovecot over each
// TLS mode, and a wrong password as the one clear line of a ConnError,
// permanent as for the go-imap connection.
func TestUploaderDovecot(t *testing.T) {
	d := testenv.StartDovecot(t, testenv.WithTLS(testenv.TLSOn))
	user := testenv.DefaultUser.Name
	pass, _ := d.Password(user)
	ctx := context.Background()
	msg := func(s string) UploadMsg {
		return UploadMsg{Flags: []imap.Flag{imap.FlagFlagged}, Date: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), Size: int64(len(s)),
			Write: func(w io.Writer) error { _, err := io.WriteString(w, s); return err }}
	}
	total := 0
	for _, tc := range []struct {
		mode TLSMode
		addr string
		caps int // CAPABILITY commands: Dovecot tells them in its greeting and LOGIN answer, but not over STARTTLS's
	}{
		{"implicit", d.IMAPSAddr(), 0}, {"starttls", d.IMAPAddr(), 1}, {"none", d.IMAPAddr(), 0},
	} {
		var wire strings.Builder
		e := Endpoint{Addr: tc.addr, TLS: tc.mode, TLSConfig: d.TLSConfig(), Username: user, Password: pass, Debug: &wire}
		up, err := e.DialUploader(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if n := strings.Count(wire.String(), " CAPABILITY\r\n"); n != tc.caps {
			t.Errorf("%s: %d CAPABILITY commands before the first upload, want %d:\n%s", tc.mode, n, tc.caps, wire.String())
		}
		var msgs []UploadMsg
		for i := range 3 {
			msgs = append(msgs, msg(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s-%d@x>\r\n\r\nbody\r\n", tc.mode, i, tc.mode, i)))
		}
		uids, err := up.AppendMany(ctx, "INBOX", msgs)
		if err != nil || len(uids) != 3 || uids[0] >= uids[1] || uids[1] >= uids[2] {
			t.Errorf("%s: AppendMany = %v, %v", tc.mode, uids, err)
		}
		total += 3
		up.Close()
	}
	c := d.Client(t, user)
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || int(*st.NumMessages) != total {
		t.Errorf("INBOX has %v messages (err %v), want %d", st.NumMessages, err, total)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true}).Collect()
	if err != nil || len(bufs) != 1 || !slicesContains(bufs[0].Flags, imap.FlagFlagged) || !bufs[0].InternalDate.Equal(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("first message: %+v, %v; want \\Flagged and the given date", bufs, err)
	}

	e := Endpoint{Addr: d.IMAPSAddr(), TLS: "implicit", TLSConfig: d.TLSConfig(), Username: user, Password: "wrong"}
	_, err = e.DialUploader(ctx)
	var ce *ConnError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "wrong user name or password") || !nethint.Permanent(err) {
		t.Fatalf("wrong password: err = %v, want a permanent ConnError that says so", err)
	}
	t.Log(err)
}

func slicesContains(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}
