package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

// dovecotServer is the private Dovecot every peer syncs from.
type dovecotServer struct {
	d          *testenv.Dovecot
	user, pass string
	via        *latencyProxy // if set, clients connect through it (twoway -rtt)
}

// startDovecot starts the private Dovecot in dir with one user, "test";
// extra is appended to its configuration.
func startDovecot(dir, extra string) (*dovecotServer, error) {
	srvs, err := startDovecotUsers(dir, extra, "test")
	if err != nil {
		return nil, err
	}
	return srvs[0], nil
}

// startDovecotUsers starts one private Dovecot in dir with a user per name
// (password name + "-pass") and returns one dovecotServer per user, in the
// order of names. They share the instance: Stop any one of them to stop it.
func startDovecotUsers(dir, extra string, names ...string) ([]*dovecotServer, error) {
	users := make([]testenv.User, len(names))
	for i, n := range names {
		users[i] = testenv.User{Name: n, Password: n + "-pass"}
	}
	d, err := testenv.NewDovecot(testenv.Config{Dir: dir, Users: users, Extra: extra})
	if err != nil {
		return nil, err
	}
	srvs := make([]*dovecotServer, len(users))
	for i, u := range users {
		srvs[i] = &dovecotServer{d: d, user: u.Name, pass: u.Password}
	}
	return srvs, nil
}

func (s *dovecotServer) Stop() error { return s.d.Stop() }

// upstream is where and as whom a client logs in to the user's account.
func (s *dovecotServer) upstream() upstream {
	up := upstream{Host: s.d.Host, Port: s.d.IMAPPort, User: s.user, Password: s.pass}
	if s.via != nil {
		up = s.via.via(up)
	}
	return up
}

// corpusInfo describes what was seeded.
type corpusInfo struct {
	Messages int            `json:"messages"`
	Bytes    int64          `json:"bytes"` // as generated, CRLF line ends
	Folders  map[string]int `json:"folders"`
}

// seed writes messages 0..n-1 of the corpus straight into the user's Maildir.
func (s *dovecotServer) seed(seed int64, n int, opts corpus.Options) (corpusInfo, error) {
	info := corpusInfo{Folders: map[string]int{}}
	w := s.d.MaildirWriter(s.user)
	err := corpus.Each(seed, n, opts, func(m corpus.Message) error {
		info.Messages++
		info.Bytes += int64(len(m.Raw))
		info.Folders[folderName(m.Folder)]++
		return w.Write(m)
	})
	return info, err
}

func folderName(f string) string {
	if f == "" || strings.EqualFold(f, "INBOX") {
		return "INBOX"
	}
	return f
}

func (s *dovecotServer) dial() (*imapclient.Client, error) { return s.d.Dial(s.user) }

func logout(c *imapclient.Client) {
	c.Logout().Wait()
	c.Close()
}

// folders lists the selectable folders.
func folders(c *imapclient.Client) ([]string, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var names []string
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		names = append(names, l.Mailbox)
	}
	slices.Sort(names)
	return names, nil
}

// warm selects every folder and fetches everything a sync asks for once,
// bodies included, so that Dovecot has indexed the new files and the page
// cache holds them before the first peer runs.
func (s *dovecotServer) warm() error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer logout(c)
	names, err := folders(c)
	if err != nil {
		return err
	}
	for _, name := range names {
		sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return fmt.Errorf("EXAMINE %s: %w", name, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, RFC822Size: true, InternalDate: true, Envelope: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			for item := msg.Next(); item != nil; item = msg.Next() {
				if body, ok := item.(imapclient.FetchItemDataBodySection); ok && body.Literal != nil {
					if _, err := io.Copy(io.Discard, body.Literal); err != nil {
						return err
					}
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("FETCH %s: %w", name, err)
		}
	}
	return nil
}

// folderCount is what a folder holds: messages, and of those how many are
// \Seen.
type folderCount struct {
	Messages int `json:"messages"`
	Seen     int `json:"seen"`
}

// inventory maps a folder (server name, or local directory) to its count.
type inventory map[string]folderCount

func (inv inventory) total() folderCount {
	var t folderCount
	for _, fc := range inv {
		t.Messages += fc.Messages
		t.Seen += fc.Seen
	}
	return t
}

// inventory asks the server for STATUS (MESSAGES UNSEEN) of every folder.
func (s *dovecotServer) inventory() (inventory, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer logout(c)
	names, err := folders(c)
	if err != nil {
		return nil, err
	}
	inv := inventory{}
	for _, name := range names {
		st, err := c.Status(name, &imap.StatusOptions{NumMessages: true, NumUnseen: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("STATUS %s: %w", name, err)
		}
		if st.NumMessages == nil || st.NumUnseen == nil {
			return nil, fmt.Errorf("STATUS %s: incomplete answer", name)
		}
		inv[name] = folderCount{Messages: int(*st.NumMessages), Seen: int(*st.NumMessages - *st.NumUnseen)}
	}
	return inv, nil
}

// serverChange is what change did, to undo it and to tell what the
// server must hold meanwhile.
type serverChange struct {
	folders  map[string]*folderChange
	appended []corpus.Message
}

// folderChange is what change did to one folder.
type folderChange struct {
	seen, unseen imap.UIDSet // UIDs that got, lost \Seen
	uidNext      imap.UID    // before the APPENDs
	appended     int
}

// change toggles \Seen on k messages spread over the folders in proportion
// to their size, then APPENDs messages next..next+k-1 of the corpus. undo
// puts the server back (flags toggled back, new messages expunged).
func (s *dovecotServer) change(seed int64, next, k int, opts corpus.Options) (*serverChange, error) {
	c, err := s.dial()
	if err != nil {
		return nil, err
	}
	defer logout(c)
	names, err := folders(c)
	if err != nil {
		return nil, err
	}
	ch := &serverChange{folders: map[string]*folderChange{}}
	sizes := make([]int, len(names))
	for i, name := range names {
		st, err := c.Status(name, &imap.StatusOptions{NumMessages: true, UIDNext: true}).Wait()
		if err != nil || st.NumMessages == nil {
			return nil, fmt.Errorf("STATUS %s: %v", name, err)
		}
		sizes[i] = int(*st.NumMessages)
		ch.folders[name] = &folderChange{uidNext: st.UIDNext}
	}
	for i, n := range spread(k, sizes) {
		if n == 0 {
			continue
		}
		name, fc := names[i], ch.folders[names[i]]
		if _, err := c.Select(name, nil).Wait(); err != nil {
			return nil, fmt.Errorf("SELECT %s: %w", name, err)
		}
		var seqs []uint32
		for j := range n {
			seqs = append(seqs, uint32(1+j*sizes[i]/n))
		}
		msgs, err := c.Fetch(imap.SeqSetNum(seqs...), &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return nil, fmt.Errorf("FETCH %s: %w", name, err)
		}
		for _, m := range msgs {
			if slices.Contains(m.Flags, imap.FlagSeen) {
				fc.unseen.AddNum(m.UID)
			} else {
				fc.seen.AddNum(m.UID)
			}
		}
		if err := storeSeen(c, fc.seen, fc.unseen); err != nil {
			return nil, fmt.Errorf("STORE %s: %w", name, err)
		}
	}
	a, err := s.d.Appender(s.user)
	if err != nil {
		return nil, err
	}
	for i := range k {
		m := corpus.At(seed, next+i, opts)
		fc, ok := ch.folders[folderName(m.Folder)]
		if !ok {
			a.Close()
			return nil, fmt.Errorf("corpus message %d is for folder %q, not on the server", next+i, m.Folder)
		}
		fc.appended++
		ch.appended = append(ch.appended, m)
		if err := a.Append(m); err != nil {
			a.Close()
			return nil, fmt.Errorf("APPEND: %w", err)
		}
	}
	if err := a.Close(); err != nil {
		return nil, fmt.Errorf("APPEND: %w", err)
	}
	return ch, nil
}

// expect is what the server holds after the change when it held base (as
// read from it: with UIDs).
func (ch *serverChange) expect(base mirror) (mirror, error) {
	m := base.clone()
	for name, fc := range ch.folders {
		byUID := map[imap.UID]string{}
		for id, msg := range m[name] {
			byUID[msg.UID] = id
		}
		for _, set := range []imap.UIDSet{fc.seen, fc.unseen} {
			uids, _ := set.Nums()
			for _, uid := range uids {
				id, ok := byUID[uid]
				if !ok {
					return nil, fmt.Errorf("%s: UID %d changed, not on the server before", name, uid)
				}
				msg := m[name][id]
				msg.Flags = toggleFlag(msg.Flags, 'S')
				m[name][id] = msg
			}
		}
	}
	for _, c := range ch.appended {
		m[folderName(c.Folder)][c.MessageID] = expectMessage(c, true)
	}
	return m, nil
}

func (s *dovecotServer) undo(ch *serverChange) error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer logout(c)
	for name, fc := range ch.folders {
		if len(fc.seen) == 0 && len(fc.unseen) == 0 && fc.appended == 0 {
			continue
		}
		if _, err := c.Select(name, nil).Wait(); err != nil {
			return fmt.Errorf("SELECT %s: %w", name, err)
		}
		if err := storeSeen(c, fc.unseen, fc.seen); err != nil {
			return fmt.Errorf("STORE %s: %w", name, err)
		}
		if fc.appended == 0 {
			continue
		}
		// An explicit upper bound: "uidNext:*" would match the last old
		// message if none had been added. The APPENDs got consecutive UIDs
		// (one writer); the verification after the undo would see
		// otherwise.
		added := imap.UIDSet{{Start: fc.uidNext, Stop: fc.uidNext + imap.UID(fc.appended) - 1}}
		del := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
		if err := c.Store(added, del, nil).Close(); err != nil {
			return fmt.Errorf("STORE %s: %w", name, err)
		}
		if err := c.UIDExpunge(added).Close(); err != nil {
			return fmt.Errorf("UID EXPUNGE %s: %w", name, err)
		}
	}
	return nil
}

// storeSeen adds \Seen to the messages of add and removes it from del.
func storeSeen(c *imapclient.Client, add, del imap.UIDSet) error {
	for _, op := range []struct {
		set imap.UIDSet
		op  imap.StoreFlagsOp
	}{{add, imap.StoreFlagsAdd}, {del, imap.StoreFlagsDel}} {
		if len(op.set) == 0 {
			continue
		}
		f := &imap.StoreFlags{Op: op.op, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
		if err := c.Store(op.set, f, nil).Close(); err != nil {
			return err
		}
	}
	return nil
}

// spread divides k among buckets in proportion to sizes (largest
// remainders first), never giving a bucket more than its size.
func spread(k int, sizes []int) []int {
	total := 0
	for _, n := range sizes {
		total += n
	}
	out := make([]int, len(sizes))
	if total == 0 {
		return out
	}
	k = min(k, total)
	given := 0
	for i, n := range sizes {
		out[i] = k * n / total
		given += out[i]
	}
	// Hand out the rest one each, largest remainder first.
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return k*sizes[b]%total - k*sizes[a]%total })
	for i := 0; given < k; i = (i + 1) % len(order) {
		if j := order[i]; out[j] < sizes[j] {
			out[j]++
			given++
		}
	}
	return out
}

// cpu is the CPU time Dovecot has used so far (see testenv.Dovecot.CPUTime).
func (s *dovecotServer) cpu() (time.Duration, error) { return s.d.CPUTime() }
