package agenttest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/maildir"
)

// Server is another IMAP client of the account: it makes the upstream
// changes of the model (as a second mail client would) and reads what the
// server holds. Not safe for concurrent use: give each goroutine its own.
type Server struct {
	c     *imapclient.Client
	model *Model
	sel   string // selected folder, "" for none
}

// NewServer wraps a logged-in client (the Server closes it) and creates the
// model's folders that the server lacks.
func NewServer(c *imapclient.Client, model *Model) (*Server, error) {
	s := &Server{c: c, model: model}
	for _, f := range model.Folders[1:] {
		if err := c.Create(f, nil).Wait(); err != nil && !strings.Contains(err.Error(), "ALREADYEXISTS") && !strings.Contains(err.Error(), "already exists") {
			c.Close()
			return nil, fmt.Errorf("create %s: %w", f, err)
		}
	}
	return s, nil
}

// Close logs out and closes the connection.
func (s *Server) Close() error {
	s.c.Logout().Wait()
	return s.c.Close()
}

// Deliver APPENDs a new message to folder (no flags), owned by owner, and
// returns it once the server has it.
func (s *Server) Deliver(folder string, owner Side) (Msg, error) {
	msg := s.model.newMsg(folder, owner)
	raw := msg.CRLF()
	cmd := s.c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		cmd.Close()
		return Msg{}, fmt.Errorf("append to %s: %w", folder, err)
	}
	if err := cmd.Close(); err != nil {
		return Msg{}, fmt.Errorf("append to %s: %w", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return Msg{}, fmt.Errorf("append to %s: %w", folder, err)
	}
	s.model.update(msg.ID, fmt.Sprintf("upstream: appended to %s as UID %d", folder, data.UID), func(*Msg) {})
	got, _ := s.model.Get(msg.ID)
	return got, nil
}

// find selects the message's folder and returns its UID there.
func (s *Server) find(msg Msg) (imap.UID, error) {
	if s.sel != msg.Folder {
		if _, err := s.c.Select(msg.Folder, nil).Wait(); err != nil {
			s.sel = ""
			return 0, fmt.Errorf("select %s: %w", msg.Folder, err)
		}
		s.sel = msg.Folder
	} else if err := s.c.Noop().Wait(); err != nil {
		return 0, err
	}
	data, err := s.c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: "<" + msg.ID + ">"}}}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search %s in %s: %w", msg.ID, msg.Folder, err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		return 0, fmt.Errorf("%w: %s is %d times in %s, want once", ErrNotThere, msg.ID, len(uids), msg.Folder)
	}
	return uids[0], nil
}

// ErrNotThere: the message to change is not (or not once) where the model
// has it: not yet synced, say. Callers of a random load skip the change.
var ErrNotThere = errors.New("not where the model has it")

// SetFlags replaces the message's flags on the server.
func (s *Server) SetFlags(msg Msg, flags maildir.Flags) error {
	uid, err := s.find(msg)
	if err != nil {
		return err
	}
	if err := s.c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: flags.IMAP()}, nil).Close(); err != nil {
		return fmt.Errorf("store flags of %s: %w", msg.ID, err)
	}
	s.model.update(msg.ID, fmt.Sprintf("upstream: %s UID %d flags set to %s", msg.Folder, uid, flags.Info()), func(m *Msg) { m.Flags = flags })
	return nil
}

// Move moves the message to folder dst on the server (UID MOVE).
func (s *Server) Move(msg Msg, dst string) error {
	uid, err := s.find(msg)
	if err != nil {
		return err
	}
	data, err := s.c.Move(imap.UIDSetNum(uid), dst).Wait()
	if err != nil {
		return fmt.Errorf("move %s to %s: %w", msg.ID, dst, err)
	}
	note := fmt.Sprintf("upstream: %s UID %d moved to %s", msg.Folder, uid, dst)
	if data != nil && data.DestUIDs != nil {
		note += " as UID " + data.DestUIDs.String()
	}
	s.model.update(msg.ID, note, func(m *Msg) { m.Moved, m.Folder = m.Folder, dst })
	return nil
}

// Delete flags the message \Deleted and expunges it (UID EXPUNGE).
func (s *Server) Delete(msg Msg) error {
	uid, err := s.find(msg)
	if err != nil {
		return err
	}
	set := imap.UIDSetNum(uid)
	if err := s.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("delete %s: %w", msg.ID, err)
	}
	if err := s.c.UIDExpunge(set).Close(); err != nil {
		return fmt.Errorf("expunge %s: %w", msg.ID, err)
	}
	s.model.update(msg.ID, fmt.Sprintf("upstream: %s UID %d expunged", msg.Folder, uid), func(m *Msg) { m.Gone = true })
	return nil
}

// Snapshot reads every message of the model's folders on the server:
// Message-ID -> copies (folder, flags, UID; with bodies when withBody).
// A folder the server lacks holds nothing.
func (s *Server) Snapshot(withBody bool) (map[string][]Seen, error) {
	out := map[string][]Seen{}
	s.sel = ""
	for _, f := range s.model.Folders {
		sel, err := s.c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
				continue
			}
			return nil, fmt.Errorf("examine %s: %w", f, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
		if withBody {
			section = &imap.FetchItemBodySection{Peek: true}
		}
		all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}
		bufs, err := s.c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", f, err)
		}
		for _, b := range bufs {
			raw := b.FindBodySection(section)
			flags, _ := maildir.FlagsFromIMAP(b.Flags)
			seen := Seen{Folder: f, Flags: flags, Where: fmt.Sprintf("UID %d", b.UID)}
			if withBody {
				seen.Body = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
			}
			id := MessageID(raw)
			out[id] = append(out[id], seen)
		}
	}
	return out, nil
}
