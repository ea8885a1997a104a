// Package demo is the IMAP server of `postfach demo`: an in-process
// server on 127.0.0.1 seeded with sample mail (folders nested and with a
// non-ASCII name, encoded headers, some flags), which the demo mirrors
// like any account. It lives only as long as the command, keeps its mail
// in memory (go-imap's imapmemserver), accepts one user demo/demo over
// plain text on loopback only, and is the same for every run with the same
// message count (a fixed seed).
//
// It is part of the binary because `postfach demo` is a user command; it
// is no test double: the tests run against Dovecot. The production
// packages (agent, sync/*) never import it.
package demo

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Server is the running demo server.
type Server struct {
	Addr     string
	User     string
	Password string
	Messages int
	srv      *imapserver.Server
}

// Start starts the demo server with n sample messages.
func Start(n int) (*Server, error) {
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("demo", "demo")
	mem.AddUser(user)
	folders := []string{"INBOX", "Archive", "Lists/Go", "Entwürfe", "Sent"}
	for _, f := range folders {
		if err := user.Create(f, nil); err != nil {
			return nil, err
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		folder := folders[r.IntN(len(folders))]
		raw, date, flags := sampleMessage(r, i)
		_, err := user.Append(folder, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Flags: flags, Time: date})
		if err != nil {
			return nil, err
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true, // loopback only
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(ln)
	return &Server{Addr: ln.Addr().String(), User: "demo", Password: "demo", Messages: n, srv: srv}, nil
}

// Close stops the server.
func (d *Server) Close() error { return d.srv.Close() }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

var (
	samplePeople   = []string{"Ada Lovelace <ada@example.org>", "=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>", "Grace Hopper <grace@example.com>", "=?UTF-8?B?5bGx55Sw5aSq6YOO?= <yamada@example.jp>"}
	sampleSubjects = []string{"Meeting notes", "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=", "Quarterly report", "Re: offline mail", "Your archive is ready", "Lunch?"}
	sampleWords    = strings.Fields("mail sync archive offline maildir index search backup server folder message flag restore laptop train")
)

func sampleMessage(r *rand.Rand, i int) ([]byte, time.Time, []imap.Flag) {
	date := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * 97 * time.Minute)
	var body strings.Builder
	for w := 0; w < 40+r.IntN(200); w++ {
		body.WriteString(sampleWords[r.IntN(len(sampleWords))])
		if w%12 == 11 {
			body.WriteString("\r\n")
		} else {
			body.WriteByte(' ')
		}
	}
	raw := fmt.Sprintf("From: %s\r\nTo: you@example.net\r\nSubject: %s #%d\r\nDate: %s\r\nMessage-ID: <demo-%d@postfach.invalid>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		samplePeople[r.IntN(len(samplePeople))], sampleSubjects[r.IntN(len(sampleSubjects))], i,
		date.Format(time.RFC1123Z), i, body.String())
	var flags []imap.Flag
	if r.IntN(3) > 0 {
		flags = append(flags, imap.FlagSeen)
	}
	if r.IntN(10) == 0 {
		flags = append(flags, imap.FlagFlagged)
	}
	return []byte(raw), date, flags
}
