package imapd

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/postfach/postfach/index"
)

// delim is the hierarchy delimiter, the store's folder separator.
const delim = '/'

// mbox is a mailbox name LIST knows: a folder, or a name above folders
// that is none (\Noselect).
type mbox struct {
	name    string
	account string
	folder  *index.Folder // nil: no folder of that name
}

// imapName is the mailbox name of an account's folder.
func (s *Server) imapName(account, folder string) string {
	if len(s.o.Accounts) == 1 {
		return folder
	}
	return account + string(delim) + folder
}

// split turns a mailbox name into an account and a folder name ("INBOX"
// in any case is INBOX).
func (s *Server) split(name string) (account, folder string, ok bool) {
	name = strings.TrimSuffix(name, string(delim))
	if len(s.o.Accounts) == 1 {
		account, folder = s.o.Accounts[0], name
	} else {
		account, folder, ok = strings.Cut(name, string(delim))
		if !ok || !slices.Contains(s.o.Accounts, account) {
			return "", "", false
		}
	}
	if strings.EqualFold(folder, "INBOX") {
		folder = "INBOX"
	}
	return account, folder, folder != ""
}

func errNoMailbox(code imap.ResponseCode) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: "No such mailbox"}
}

// folder returns the folder a mailbox name names.
func (s *Server) folder(ctx context.Context, name string) (*index.Folder, error) {
	acct, fname, ok := s.split(name)
	if !ok {
		return nil, errNoMailbox(imap.ResponseCodeNonExistent)
	}
	var f *index.Folder
	err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		id, err := tx.Account(acct)
		if err != nil {
			return err
		}
		f, err = tx.FolderByName(id, fname)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return nil, errNoMailbox(imap.ResponseCodeNonExistent)
	}
	return f, err
}

// target is folder for the destination of COPY, MOVE and APPEND: a
// missing one is NO [TRYCREATE].
func (s *Server) target(ctx context.Context, name string) (*index.Folder, error) {
	f, err := s.folder(ctx, name)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent {
		return nil, errNoMailbox(imap.ResponseCodeTryCreate)
	}
	return f, err
}

// mailboxes lists every folder of the served accounts, and the names
// above them that are no folder, sorted by name.
func (s *Server) mailboxes(ctx context.Context) ([]mbox, error) {
	var out []mbox
	err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		for _, a := range s.o.Accounts {
			id, err := tx.Account(a)
			if errors.Is(err, index.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			folders, err := tx.Folders(id)
			if err != nil {
				return err
			}
			for _, f := range folders {
				out = append(out, mbox{name: s.imapName(a, f.Name), account: a, folder: f})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, m := range out {
		have[m.name] = true
	}
	for _, m := range out {
		for i := strings.LastIndexByte(m.name, delim); i > 0; i = strings.LastIndexByte(m.name[:i], delim) {
			if p := m.name[:i]; !have[p] {
				have[p] = true
				out = append(out, mbox{name: p, account: m.account})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, o *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	all, err := s.srv.mailboxes(s.srv.ctx)
	if err != nil {
		return s.storeErr("listing the folders", err)
	}
	// An extended LIST (RFC 5258 3: options or several patterns) names a
	// level that is no folder \NonExistent, a basic one \Noselect.
	extended := len(patterns) > 1 || *o != imap.ListOptions{}
	for i, m := range all {
		if !matchAny(m.name, ref, patterns) {
			continue
		}
		children := i+1 < len(all) && strings.HasPrefix(all[i+1].name, m.name+string(delim))
		data := s.listData(m, o, children, extended)
		if o.SelectSubscribed && !s.subscribed(m) {
			// RECURSIVEMATCH (RFC 5258, 3.5): a mailbox with subscribed
			// mailboxes below it that the patterns leave out.
			if !o.SelectRecursiveMatch || !s.subscribedBelow(all[i+1:], m.name, ref, patterns) {
				continue
			}
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if o.SelectSpecialUse && (m.folder == nil || m.folder.SpecialUse == "") {
			continue
		}
		if o.ReturnStatus != nil && m.folder != nil {
			if data.Status, err = s.status(m.name, m.folder, o.ReturnStatus); err != nil {
				return err
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// listData is the LIST response of mailbox m; extended: the command is
// an extended LIST.
func (s *session) listData(m mbox, o *imap.ListOptions, children, extended bool) *imap.ListData {
	data := &imap.ListData{Mailbox: m.name, Delim: delim}
	switch {
	case m.folder == nil && extended:
		// RFC 5258 3: it "MUST be accurately computed". It implies
		// \Noselect, which is given too: the library answers LSUB
		// through List with options a LIST may have as well, and LSUB
		// wants \Noselect (RFC 3501 6.3.9).
		data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent, imap.MailboxAttrNoSelect)
	case m.folder == nil:
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
	}
	if children {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if m.folder != nil && validAttr(m.folder.SpecialUse) {
		data.Attrs = append(data.Attrs, imap.MailboxAttr(m.folder.SpecialUse))
	}
	if (o.ReturnSubscribed || o.SelectSubscribed) && s.subscribed(m) {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	return data
}

// validAttr reports whether a recorded special use can be sent as a
// mailbox attribute.
func validAttr(a string) bool {
	return len(a) > 1 && a[0] == '\\' && atom(a[1:])
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
	}
	return false
}

// subscribed reports whether m is a subscribed mailbox: a folder no
// client unsubscribed.
func (s *session) subscribed(m mbox) bool {
	return m.folder != nil && s.srv.subs.subscribed(m.name)
}

// subscribedBelow reports whether a mailbox below name (in rest, which
// follows name in sorted order) is subscribed and not matched by the
// patterns.
func (s *session) subscribedBelow(rest []mbox, name, ref string, patterns []string) bool {
	for _, m := range rest {
		if !strings.HasPrefix(m.name, name+string(delim)) {
			return false
		}
		if s.subscribed(m) && !matchAny(m.name, ref, patterns) {
			return true
		}
	}
	return false
}

func (s *session) Status(name string, o *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.srv.folder(s.srv.ctx, name)
	if err != nil {
		return nil, err
	}
	return s.status(name, f, o)
}

func (s *session) status(name string, f *index.Folder, o *imap.StatusOptions) (*imap.StatusData, error) {
	var st index.LocalStatus
	err := s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		var err error
		st, err = tx.LocalStatus(f.ID)
		return err
	})
	if err != nil {
		return nil, s.storeErr("reading a folder's status", err)
	}
	var zero uint32
	limit := uint32(appendLimit)
	data := &imap.StatusData{Mailbox: name, UIDNext: imap.UID(f.LocalUIDNext), UIDValidity: f.LocalUIDValidity,
		NumMessages: &st.Messages, NumUnseen: &st.Unseen, NumDeleted: &st.Deleted, Size: &st.Size,
		NumRecent: &zero, AppendLimit: &limit}
	if o.DeletedStorage {
		var n int64
		data.DeletedStorage = &n
	}
	return data, nil
}

func (s *session) Create(name string, o *imap.CreateOptions) error {
	acct, fname, ok := s.srv.split(name)
	if !ok {
		return errNo("Mailboxes are created below an account's name")
	}
	if _, err := s.srv.folder(s.srv.ctx, name); err == nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox exists"}
	}
	var id index.AccountID
	err := s.srv.o.Store.Read(s.srv.ctx, func(tx *index.ReadTx) error {
		var err error
		id, err = tx.Account(acct)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return errNo("The account has not been synced yet")
	} else if err != nil {
		return s.storeErr("creating a folder", err)
	}
	release := s.srv.o.Store.LocalChangeOf(id) // see index.Store.SyncTurn
	defer release()
	if _, err := s.srv.o.Store.CreateFolder(s.srv.ctx, id, fname, nil); err != nil {
		return s.storeErr("creating a folder", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	f, err := s.srv.folder(s.srv.ctx, name)
	if err != nil {
		return err
	}
	if f.Name == "INBOX" {
		return errNo("INBOX cannot be deleted")
	}
	release, err := s.srv.o.Store.LocalChange(s.srv.ctx, f.ID) // see index.Store.SyncTurn
	if err != nil {
		return s.storeErr("changing a folder", err)
	}
	defer release()
	if err := s.srv.o.Store.RemoveFolder(s.srv.ctx, f, nil); err != nil {
		if errors.Is(err, index.ErrArchiveFolder) || errors.Is(err, index.ErrArchiveNotEmpty) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: oneLine(err.Error())}
		}
		return s.storeErr("deleting a folder", err)
	}
	s.srv.subs.forget(name)
	return nil
}

func (s *session) Rename(name, newName string, o *imap.RenameOptions) error {
	f, err := s.srv.folder(s.srv.ctx, name)
	if err != nil {
		return err
	}
	acct, fname, ok := s.srv.split(newName)
	oldAcct, _, _ := s.srv.split(name)
	if !ok || acct != oldAcct {
		return errNo("A mailbox is renamed within its account")
	}
	if f.Name == "INBOX" || fname == "INBOX" {
		return errNo("INBOX cannot be renamed")
	}
	if strings.HasPrefix(fname, f.Name+string(delim)) {
		return errNo("A mailbox cannot be renamed into itself")
	}
	if _, err := s.srv.folder(s.srv.ctx, newName); err == nil {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: "Mailbox exists"}
	}
	release, err := s.srv.o.Store.LocalChange(s.srv.ctx, f.ID) // see index.Store.SyncTurn
	if err != nil {
		return s.storeErr("changing a folder", err)
	}
	defer release()
	if err := s.srv.o.Store.RenameFolder(s.srv.ctx, f, fname, nil); err != nil {
		if errors.Is(err, index.ErrArchiveFolder) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: oneLine(err.Error())}
		}
		return s.storeErr("renaming a folder", err)
	}
	s.srv.subs.rename(name, s.srv.imapName(acct, fname))
	return nil
}

// Subscribe takes only an existing mailbox: every folder is subscribed
// unless unsubscribed (subs.go), so a name that is none could not be
// listed as subscribed (RFC 3501 6.3.6 lets SUBSCRIBE fail).
func (s *session) Subscribe(name string) error {
	if _, err := s.srv.folder(s.srv.ctx, name); err != nil {
		return err
	}
	return s.srv.subs.set(name, true)
}

func (s *session) Unsubscribe(name string) error {
	return s.srv.subs.set(name, false)
}
