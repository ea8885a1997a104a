package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

// destFolders LISTs the destination: its hierarchy delimiter and its
// selectable folders (server names).
func destFolders(c *imapclient.Client) (rune, map[string]bool, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return 0, nil, fmt.Errorf("LIST: %w", err)
	}
	var delim rune
	names := map[string]bool{}
	for _, l := range list {
		if delim == 0 && l.Delim != 0 {
			delim = l.Delim
		}
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		name := l.Mailbox
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		names[name] = true
	}
	if delim == 0 {
		// LIST "" "" asks for the delimiter alone (RFC 3501 6.3.8).
		if l, err := c.List("", "", nil).Collect(); err == nil && len(l) > 0 {
			delim = l[0].Delim
		}
	}
	return delim, names, nil
}

// destNames is the destination's folder names (see imapsync.FolderNames):
// delimiter delim (from the LIST), the folder map, and the account's
// namespace prefix, else the server's.
func destNames(c *imapclient.Client, delim rune, o *Options) (imapsync.FolderNames, error) {
	var prefix string
	if o.DestNamespacePrefix == nil || delim == 0 {
		srvPrefix, srvDelim, err := imapsync.ServerNamespace(c)
		if err != nil {
			return imapsync.FolderNames{}, err
		}
		prefix = srvPrefix
		if delim == 0 {
			delim = srvDelim
		}
	}
	if o.DestNamespacePrefix != nil {
		prefix = *o.DestNamespacePrefix
	}
	return imapsync.NewFolderNames(delim, prefix, o.DestFolderMap), nil
}

// roundTrip refuses a destination folder name that is not a postfach name
// of the destination: one holding the server's delimiter ("INBOX.Archive"
// under '.', which would be created as INBOX.INBOX.Archive), or one the
// folder map sends elsewhere.
func roundTrip(names imapsync.FolderNames, dest string) error {
	if names.RoundTrips(dest) {
		return nil
	}
	hint := ""
	if l := names.Local(dest); l != dest && names.Remote(l) == dest {
		hint = fmt.Sprintf("; for server folder %s, say %q", dest, l)
	}
	return fmt.Errorf("destination folder %q is not a folder name of the destination account "+
		"(levels are separated by '/', the namespace prefix %q is left out, folder_map applies)%s", dest, names.Prefix, hint)
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// create CREATEs a destination folder; one that exists already is fine.
func create(c *imapclient.Client, name string) error {
	err := c.Create(name, nil).Wait()
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return nil
	}
	if err != nil {
		return fmt.Errorf("CREATE %s: %w", name, err)
	}
	return nil
}

// fetchDest EXAMINEs a destination folder and fetches the identity of
// every message in it: UID, FLAGS, RFC822.SIZE, INTERNALDATE and the
// Message-ID header.
func fetchDest(c *imapclient.Client, name string) ([]destRec, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("EXAMINE %s: %w", name, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	idSection := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{idSection}}
	// A header literal cut short by a lost connection is an error of
	// CollectMessage (and the command fails too): nothing read here is
	// used unless cmd.Close succeeds.
	cmd := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, opts)
	out := make([]destRec, 0, sel.NumMessages)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := imapsync.CollectMessage(msg)
		if err != nil {
			// Half-read response: the connection cannot be used again;
			// AbortFetch closes it without leaving go-imap's goroutines.
			return nil, imapsync.AbortFetch(c, cmd, fmt.Errorf("FETCH %s: %w", name, err))
		}
		if buf.UID == 0 {
			continue
		}
		m := destRec{size: buf.RFC822Size}
		var kw []string
		m.flags, kw = maildir.FlagsFromIMAP(buf.Flags)
		m.kw = kwHash(kw)
		var date time.Time
		if !buf.InternalDate.IsZero() {
			date = buf.InternalDate
			m.date = date.Unix()
		}
		m.id = hashID(index.ParseHeader(buf.FindBodySection(idSection)).MessageID, date)
		out = append(out, m)
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("FETCH %s: %w", name, err)
	}
	return out, nil
}

// appended is the outcome of one APPEND.
type appended struct {
	s    *srcMsg
	size int64
	err  error
}

// appendAll APPENDs msgs to a destination folder with their flags and
// internal dates, in order, keeping up to window commands in flight: the
// next APPEND goes out before the previous one is answered (a literal
// above 4 KiB still waits for the server's continuation, a round trip
// each: go-imap sends only smaller ones without it, LITERAL+ or not).
// done is called for each answered APPEND, in order. A NO to one APPEND
// (say, a message too large for the server) is reported through done and
// the others go on; any other failure ends the run of the folder and is
// returned.
func appendAll(ctx context.Context, c *imapclient.Client, mailbox string, msgs []srcMsg, window int, done func(appended)) error {
	type inflight struct {
		cmd  *imapclient.AppendCommand
		s    *srcMsg
		size int64
		err  error // failed before the command went out
	}
	queue := make(chan inflight, window)
	var (
		mu     sync.Mutex
		broken error // a failure that is not one APPEND's NO
	)
	fail := func(err error) {
		mu.Lock()
		if broken == nil {
			broken = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return broken != nil
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range queue {
			err := f.err
			switch {
			case f.cmd != nil && err != nil: // out of step: the connection is closed
				f.cmd.Wait()
				fail(err)
			case f.cmd != nil:
				_, err = f.cmd.Wait()
				var ie *imap.Error
				if err != nil && !errors.As(err, &ie) {
					err = fmt.Errorf("APPEND to %s: %w", mailbox, err)
					fail(err)
				}
			}
			done(appended{s: f.s, size: f.size, err: err})
		}
	}()
	for i := range msgs {
		s := &msgs[i]
		if ctx.Err() != nil || failed() {
			break
		}
		f := inflight{s: s}
		f.cmd, f.size, f.err = appendOne(c, mailbox, s)
		queue <- f
	}
	close(queue)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return broken
}

// appendOne sends one APPEND: the stored file turned back into CRLF, with
// the message's flags and internal date. It does not wait for the answer.
// An error with a nil command means nothing was sent (the file could not
// be read); an error with a command means the connection is out of step
// (closed here) and unusable.
func appendOne(c *imapclient.Client, mailbox string, s *srcMsg) (*imapclient.AppendCommand, int64, error) {
	size, err := s.crlfSize()
	if err != nil {
		return nil, 0, err
	}
	if err := s.damage(); err != nil { // plan leaves these out; never send one
		return nil, 0, err
	}
	f, err := s.open()
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	opts := &imap.AppendOptions{Flags: s.imapFlags()}
	if s.dated {
		opts.Time = s.time()
	}
	cmd := c.Append(mailbox, size, opts)
	// An error writing the literal (a NO before the continuation, or the
	// connection's failure) comes back from Wait.
	if local, _ := s.send(cmd, f, size); local != nil {
		// The literal is cut short: the server would take what follows for
		// its rest.
		c.Close()
		cmd.Close()
		return cmd, size, local
	}
	cmd.Close()
	return cmd, size, nil
}

// send writes the message file f to w in wire form: exactly size bytes
// (its CRLF size, taken before). A file that cannot be read or whose size
// changed is the message's own trouble, local; a failure of w is werr.
func (s *srcMsg) send(w io.Writer, f io.Reader, size int64) (local, werr error) {
	br := readers.Get().(*bufio.Reader)
	br.Reset(f)
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	r := &errReader{r: br}
	err := maildir.CopyCRLF(w, r, size)
	switch {
	case r.err != nil:
		return fmt.Errorf("reading message file %s: %w", s.key, r.err), nil
	case errors.Is(err, maildir.ErrSizeChanged):
		return fmt.Errorf("message file %s changed while being sent", s.key), nil
	}
	return nil, err
}

// readers are the 64 KiB read buffers of send, reused rather than made
// for each message.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// errReader remembers its reader's error, to tell it from the writer's.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// appendMulti does what appendAll does, over MULTIAPPEND (RFC 3502, see
// imapconn.Uploader.AppendAll): commands of many messages, each of which
// the server stores in one transaction (Dovecot spends about a quarter of
// the CPU time of one APPEND each). A NO is reported for its own message,
// as appendAll does, and the others go on.
func appendMulti(ctx context.Context, up *imapconn.Uploader, mailbox string, msgs []srcMsg, done func(appended)) error {
	sent := make([]appended, 0, len(msgs))
	um := make([]imapconn.UploadMsg, 0, len(msgs))
	for i := range msgs {
		s := &msgs[i]
		size, err := s.crlfSize()
		if err == nil {
			err = s.damage() // plan leaves these out; never send one
		}
		if err != nil { // nothing to send for it: its own failure
			done(appended{s: s, err: err})
			continue
		}
		sent = append(sent, appended{s: s, size: size})
		um = append(um, imapconn.UploadMsg{Flags: s.imapFlags(), Date: s.time(), Size: size, Write: func(w io.Writer) error {
			f, err := s.open()
			if err != nil {
				return fmt.Errorf("reading message file %s: %w", s.key, err)
			}
			defer f.Close()
			local, werr := s.send(w, f, size)
			return errors.Join(local, werr)
		}})
	}
	err := up.AppendAll(ctx, mailbox, um, func(i int, _ uint32, refused error) {
		a := sent[i]
		a.err = refused
		done(a)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("APPEND to %s: %w", mailbox, err)
	}
	return ctx.Err()
}
