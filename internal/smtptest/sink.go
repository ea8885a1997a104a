package smtptest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-smtp"
)

// Delivered is one message as the relay delivered it.
type Delivered struct {
	// From and To are the envelope the relay sent on (MAIL FROM and the
	// RCPT TO addresses of one transaction, without angle brackets).
	From string
	To   []string
	// Data is the message without the Received field the relay put on
	// top: byte for byte what the client sent (line ends CRLF).
	Data []byte
	// Raw is the message as the relay delivered it.
	Raw []byte
}

// sink is the relay's only destination: a go-smtp server that keeps every
// message.
type sink struct {
	srv      *smtp.Server
	ln       net.Listener
	hostname string // the relay's myhostname, to find its Received field
	done     chan struct{}

	mu      sync.Mutex
	msgs    []Delivered
	changed chan struct{} // closed and replaced on each delivery
}

func startSink(hostname string) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	k := &sink{ln: ln, hostname: hostname, changed: make(chan struct{}), done: make(chan struct{})}
	k.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{k: k}, nil
	}))
	k.srv.Domain = "sink.smtptest.invalid"
	k.srv.EnableSMTPUTF8 = true
	k.srv.MaxMessageBytes = 0
	k.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		defer close(k.done)
		k.srv.Serve(ln)
	}()
	return k, nil
}

func (k *sink) port() int { return k.ln.Addr().(*net.TCPAddr).Port }

func (k *sink) close() {
	k.srv.Close()
	<-k.done
}

func (k *sink) add(d Delivered) {
	k.mu.Lock()
	k.msgs = append(k.msgs, d)
	close(k.changed)
	k.changed = make(chan struct{})
	k.mu.Unlock()
}

// list returns a copy of what arrived, and a channel closed on the next
// arrival.
func (k *sink) list() ([]Delivered, <-chan struct{}) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Delivered(nil), k.msgs...), k.changed
}

func (k *sink) wait(ctx context.Context, n int) ([]Delivered, error) {
	for {
		ds, changed := k.list()
		if len(ds) >= n {
			return ds, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ds, ctx.Err()
		}
	}
}

type sinkSession struct {
	k    *sink
	from string
	to   []string
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.to = from, nil
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(s.to) == 0 {
		return errors.New("no recipients")
	}
	s.k.add(Delivered{From: s.from, To: s.to, Data: stripReceived(raw, s.k.hostname), Raw: raw})
	return nil
}

// stripReceived removes the first header field of msg when it is a
// Received field written by hostname's Postfix.
func stripReceived(msg []byte, hostname string) []byte {
	if len(msg) < 9 || !strings.EqualFold(string(msg[:9]), "Received:") {
		return msg
	}
	end := 0
	for {
		i := bytes.IndexByte(msg[end:], '\n')
		if i < 0 {
			return msg
		}
		end += i + 1
		if end >= len(msg) || (msg[end] != ' ' && msg[end] != '\t') {
			break
		}
	}
	if !bytes.Contains(msg[:end], []byte("by "+hostname+" (Postfix)")) {
		return msg
	}
	return msg[end:]
}
