package imapd

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
)

// session is one client connection.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	remote net.Addr
	user   string // "" until logged in
	// view is the selected mailbox, nil when none. The connection's
	// goroutine sets it, under mu, and reads it; Idle runs on another
	// goroutine, which the library does not wait for when the connection
	// drops during IDLE: it reads view under mu.
	mu   sync.Mutex
	view *view
}

// view is a session's selected mailbox.
type view struct {
	box       *mailbox
	folder    index.Folder // as it was when selected (ID, account, UIDVALIDITY)
	tracker   *imapserver.SessionTracker
	readOnly  bool
	notify    chan struct{} // a token when the hub queued an update (see Idle)
	searchRes imap.UIDSet   // SEARCH RETURN (SAVE): "$"
	// ahead holds rows a FETCH read past the messages it named, for a
	// client that fetches message by message (see readAhead). Only the
	// connection's goroutine uses it.
	ahead map[uint32]*index.Message
	// unsentExpunges counts the expunges queued for this session since
	// it last polled with expunges allowed (at least those it has not
	// been sent). Under box.mu.
	unsentExpunges int
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Shutting down"}
	}
	if s.sessions >= maxSessions {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Too many connections"}
	}
	s.sessions++
	return &session{srv: s, conn: c, remote: c.NetConn().RemoteAddr()}, nil, nil
}

func (s *session) Close() error {
	err := s.Unselect()
	s.srv.mu.Lock()
	s.srv.sessions--
	if s.srv.sessions == 0 {
		s.srv.ended.Broadcast()
	}
	s.srv.mu.Unlock()
	return err
}

func (s *session) Login(username, password string) error {
	if !clearTextOK(s.conn.NetConn()) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodePrivacyRequired,
			Text: "Log in over TLS (STARTTLS) from another machine"}
	}
	if err := s.srv.o.Auth(s.remote, username, password); err != nil {
		s.srv.log.Info("imapd: login refused", "remote", s.remote.String(), "user", username, "err", err)
		return imapserver.ErrAuthFailed
	}
	s.user = username
	return nil
}

// clearTextOK reports whether a login may be taken on c: over TLS, or in
// the clear from loopback (as Dovecot allows on localhost), never in the
// clear from another machine.
func clearTextOK(c net.Conn) bool {
	if _, ok := c.(*tls.Conn); ok {
		return true
	}
	t, ok := c.RemoteAddr().(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// AppendLimit is the largest message APPEND takes.
func (s *session) AppendLimit() uint32 { return appendLimit }

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: delim}}}, nil
}

// systemFlags are the flags every mailbox takes (FLAGS); PERMANENTFLAGS
// adds \* (any keyword).
var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted,
	imap.FlagDraft, imap.FlagForwarded}

func (s *session) Select(name string, o *imap.SelectOptions) (*imap.SelectData, error) {
	if s.view != nil {
		if err := s.Unselect(); err != nil {
			return nil, err
		}
	}
	f, err := s.srv.folder(s.srv.ctx, name)
	if err != nil {
		return nil, err
	}
	var st index.LocalStatus
	if err := s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		st, err = tx.LocalStatus(f.ID)
		return err
	}); err != nil {
		return nil, s.storeErr("selecting a folder", err)
	}
	b, err := s.srv.hub.open(s.srv.ctx, f.ID)
	if errors.Is(err, index.ErrNotFound) {
		return nil, errNoMailbox(imap.ResponseCodeNonExistent) // removed meanwhile
	} else if err != nil {
		return nil, s.storeErr("selecting a folder", err)
	}
	v := &view{box: b, folder: *f, readOnly: o.ReadOnly, notify: make(chan struct{}, 1)}
	b.mu.Lock()
	v.tracker = b.tracker.NewSession()
	b.views[v] = struct{}{}
	// EXAMINE: no flag can be changed (RFC 9051 6.3.3), so none is
	// permanent, as RFC 3501 7.1 defines PERMANENTFLAGS.
	permanent := []imap.Flag{}
	if !o.ReadOnly {
		permanent = append(append(permanent, systemFlags...), imap.FlagWildcard)
	}
	data := &imap.SelectData{
		Flags:          systemFlags,
		PermanentFlags: permanent,
		NumMessages:    uint32(len(b.uids)),
		UIDNext:        imap.UID(max(f.LocalUIDNext, b.maxUID+1)),
		UIDValidity:    f.LocalUIDValidity,
	}
	if i := b.index(st.FirstUnseen); st.FirstUnseen != 0 && i >= 0 {
		data.FirstUnseenSeqNum = uint32(i + 1)
	}
	b.mu.Unlock()
	s.mu.Lock()
	s.view = v
	s.mu.Unlock()
	return data, nil
}

func (s *session) Unselect() error {
	s.mu.Lock()
	v := s.view
	s.view = nil
	s.mu.Unlock()
	if v == nil {
		return nil
	}
	v.box.mu.Lock()
	delete(v.box.views, v)
	for uid, o := range v.box.own {
		if o == v {
			delete(v.box.own, uid)
		}
	}
	v.tracker.Close()
	v.box.mu.Unlock()
	s.srv.hub.release(v.box)
	return nil
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.view == nil {
		return nil
	}
	if allowExpunge {
		s.view.expungesSent()
	}
	return s.view.tracker.Poll(w, allowExpunge)
}

// expungesSent resets unsentExpunges before a poll that sends them all
// (one queued meanwhile is counted though sent: the count errs high).
func (v *view) expungesSent() {
	v.box.mu.Lock()
	v.unsentExpunges = 0
	v.box.mu.Unlock()
}

// Idle sends the selected mailbox's updates as they come until stop. It
// polls first: go-imap's SessionTracker.Idle would miss an update queued
// between the last poll and its start; here every update the hub queues
// after a poll leaves a token in v.notify, so none waits for the next.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.mu.Lock()
	v := s.view
	s.mu.Unlock()
	if v == nil {
		<-stop
		return nil
	}
	for {
		v.expungesSent()
		if err := v.tracker.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-v.notify:
		case <-stop:
			return nil
		}
	}
}

// checkWritable refuses a change in a mailbox selected with EXAMINE.
func (v *view) checkWritable() error {
	if v.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
			Text: "The mailbox is read-only (EXAMINE)"}
	}
	return nil
}

// maxSessions bounds the connections served at once (as pop3d's): each
// holds a goroutine and buffers, and a login needs none before it.
const maxSessions = 100

// errNo is a NO response with text.
func errNo(text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Text: text}
}

// storeErr turns an error of the store into a NO response naming what
// failed, and logs the error (an IMAP error is returned as it is).
func (s *session) storeErr(what string, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return err
	}
	s.srv.log.Warn("imapd: "+what, "user", s.user, "err", err)
	// The details (file names, paths) stay in the agent's log.
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: oneLine(what + " failed; the agent's log says why")}
}

// oneLine makes text fit a status response: one line, no control
// characters.
func oneLine(text string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, text)
}
