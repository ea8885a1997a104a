package imapsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapconn"
)

// pendingUploads is a folder's uploads under way (startUploads).
type pendingUploads struct {
	rows []*index.Message
	done <-chan error // the uploads' outcome; errNoUploader: not tried
	// own uploads on the worker's connection, one APPEND each: the
	// uploads if there is no uploader (the connection is the worker's
	// until wait).
	own func() error
	// noop is the NOOP sent for the refresh once the uploader has the
	// uploads (see earlyNoop); set before done is sent.
	noop *earlyNoop
}

// earlyNoop is the NOOP the refresh after a push needs once a folder's
// uploads are in (refreshAfterPush), sent on the worker's connection c as
// soon as the uploader has them, behind whatever c has in flight then
// (the folder's flag changes, its downloads): its answer comes with
// theirs instead of a round trip after them. Its responses may come
// among a FETCH's (readMessage skips a message without a body); the
// refresh reads the flags changed since the SELECT anyway.
type earlyNoop struct {
	c   *imapclient.Client
	cmd *imapclient.Command
}

// wait waits for the answer of the NOOP if it went on c, and otherwise
// sends one on c and waits for that (the worker's connection was
// replaced, or the uploads went another way).
func (n *earlyNoop) wait(c *imapclient.Client) error {
	if n != nil && n.cmd != nil && n.c == c {
		return n.cmd.Wait()
	}
	return c.Noop().Wait()
}

// wait waits for the uploads to be over and enters those the server
// took into the plan's rows by UID.
func (u pendingUploads) wait(p *msgPlan) error {
	err := <-u.done
	if err == errNoUploader {
		err = u.own()
	}
	for _, m := range u.rows {
		if m.UID != 0 {
			p.local.m[m.UID] = m
		}
	}
	return err
}

// startUploads starts uploading the plan's new local messages (fresh)
// on the run's uploader, beside what the worker does meanwhile on its
// own connection (flags, deletions, downloads: they touch other
// messages). Without an uploader they wait for wait, which sends them
// on the worker's connection. A dry run records them at once.
func (w *worker) startUploads(ctx context.Context, p *msgPlan) pendingUploads {
	j := p.j
	done := make(chan error, 1)
	rows, err := w.fresh(ctx, p)
	var counted map[*index.Message]bool // see uploadSize
	if len(rows) > 0 {
		counted = map[*index.Message]bool{}
		for _, m := range p.rec.added { // (rows of rec.rows: the same pointers)
			if m.UID == 0 {
				counted[m] = true
			}
		}
	}
	u := pendingUploads{rows: rows, done: done, own: func() error { return w.appendNew(ctx, j, rows, counted, nil) },
		noop: &earlyNoop{}}
	switch {
	case err != nil:
		done <- err
	case len(rows) == 0 || w.s.opts.DryRun:
		done <- u.own()
	default:
		c, refresh := w.c, refreshable(p.sel, p.condstore)
		go func() {
			up := w.s.up.Get(ctx, c)
			if up == nil {
				done <- errNoUploader
				return
			}
			err := w.appendNew(ctx, j, rows, counted, up)
			uploaded := false
			j.update(func(r *FolderResult) { uploaded = r.Uploaded > 0 })
			if err == nil && refresh && uploaded {
				u.noop.c, u.noop.cmd = c, c.Noop()
			}
			done <- err
		}()
	}
	return u
}

// errNoUploader: startUploads found no uploader (LazyUploader.Get).
var errNoUploader = errors.New("no uploader")

// appendNew uploads local messages the server does not have, on up (the
// run's uploader), or, if nil, one APPEND each on the worker's
// connection. Each APPEND is written ahead into the journal (with the
// folder's UIDNEXT before it), so that after a crash recoverAppends can
// find the copy on the server instead of uploading it twice.
func (w *worker) appendNew(ctx context.Context, j *folderJob, rows []*index.Message, counted map[*index.Message]bool, up *imapconn.Uploader) error {
	if len(rows) == 0 {
		return nil
	}
	o := &w.s.opts
	if o.DryRun {
		j.update(func(r *FolderResult) { r.Uploaded += len(rows) })
		for _, m := range rows {
			j.record(Action{Op: OpUpload, Key: m.Key})
		}
		return nil
	}
	intents := make([]int64, len(rows))
	err := o.Index.Write(ctx, func(tx *index.Tx) error {
		for i, m := range rows {
			id, err := tx.AddIntent(index.Intent{Account: j.f.Account, Folder: j.f.ID, Message: m.ID,
				Op: "append", Arg: strconv.FormatUint(uint64(j.uidNext), 10)})
			if err != nil {
				return err
			}
			intents[i] = id
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The uploads: the messages still on disk, with their size as sent.
	var ups []*upload
	for i, m := range rows {
		e, ok := entryOf(m)
		if !ok {
			continue
		}
		size, err := uploadSize(j, m, e, counted[m])
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted meanwhile; the next run sees it gone
			}
			return err
		}
		flags := m.Flags.IMAP()
		for _, k := range m.Keywords {
			flags = append(flags, imap.Flag(k))
		}
		ups = append(ups, &upload{store: o.Index, f: j.f, m: m, e: e, size: size, flags: flags, intent: intents[i]})
	}
	// Results are recorded in one transaction at the end; a crash before it
	// leaves intents that the next run resolves by content (recoverAppends).
	var done, refused []*upload
	if up != nil {
		done, refused, err = w.multiAppend(ctx, j, up, ups)
	} else {
		done, refused, err = w.appendEach(j, ups)
	}
	if err != nil {
		return err
	}
	for _, p := range done {
		ne, err := j.dir.SetUID(p.e, p.uid)
		if err != nil {
			return err
		}
		p.m.UID, p.m.File, p.m.RFC822Size = p.uid, ne.Sub+"/"+ne.Name, p.size
	}
	err = o.Index.Write(ctx, func(tx *index.Tx) error {
		for _, p := range done {
			m := p.m
			if err := tx.SetUploaded(m.ID, m.UID, p.size, m.File, m.Flags, m.Keywords); err != nil {
				return err
			}
			if err := tx.DoneIntent(p.intent); err != nil {
				return err
			}
		}
		for _, p := range refused { // not stored: nothing to find next time
			if err := tx.DoneIntent(p.intent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	j.update(func(r *FolderResult) {
		r.Uploaded += len(done)
		r.Refused += len(refused)
		for _, p := range refused {
			if r.RefusedWhy == "" && p.refusal != nil {
				r.RefusedWhy = p.refusal.Error()
			}
		}
	})
	for _, p := range done {
		j.record(Action{Op: OpUpload, Key: p.m.Key})
	}
	return nil
}

// appendWindow bounds the APPENDs in flight on one connection.
const appendWindow = 16

// upload is one local message on its way up.
type upload struct {
	store *index.Store
	f     *index.Folder
	m     *index.Message
	e     maildir.Entry
	size  int64 // bytes as sent: CRLF line ends
	// refusal is the server's answer when it refused the message.
	refusal error
	flags   []imap.Flag
	intent  int64
	uid     uint32 // given by the server (UIDPLUS); 0: unknown
}

// send writes the message file with CRLF line ends: exactly u.size bytes,
// or an error.
func (u *upload) send(w io.Writer) error {
	b, err := u.store.OpenMessage(u.f, u.m)
	if err != nil {
		return err
	}
	defer b.Close()
	br := getReader(b)
	defer putReader(br)
	if err := maildir.CopyCRLF(w, br, u.size); err != nil {
		return fmt.Errorf("%s/%s: %w", u.f.Name, u.m.File, err)
	}
	return nil
}

// uploadSize returns the size of m's APPEND literal: its file with CRLF
// line ends (e: its file). counted: m's row was made from its file by this run
// (reconcile), which counted that size then (index.FileMessages, as
// RFC822Size), and the file is not read again if it has the size it had
// (a Maildir file is not rewritten in place; one that is fails its
// upload, maildir.ErrSizeChanged, and is counted anew by the next run).
func uploadSize(j *folderJob, m *index.Message, e maildir.Entry, counted bool) (int64, error) {
	if counted && m.RFC822Size > 0 {
		fi, err := os.Stat(j.dir.FilePath(e))
		if err != nil {
			return 0, err
		}
		if fi.Size() == m.Size {
			return m.RFC822Size, nil
		}
	}
	return crlfSize(j.s.opts.Index, j.f, m)
}

// crlfSize returns the size of message m of folder f with CRLF line ends:
// the size of its APPEND literal.
func crlfSize(st *index.Store, f *index.Folder, m *index.Message) (int64, error) {
	b, err := st.OpenMessage(f, m)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	return maildir.CRLFSize(b)
}

// appendEach uploads with one APPEND each, pipelined on the worker's
// connection: up to appendWindow in flight (one larger than 4 KiB still
// waits for the server's continuation, but no longer for the previous
// message's answer). It returns the uploads whose UID the server told,
// and those it refused (a NO or BAD: not stored; say, a message too large
// for it): a refusal is the message's own, the others go on, and the next
// run tries it again. (go-imap closes the connection when the server
// refuses a literal it had to announce first, above 4 KiB: that fails the
// folder's run instead. The MULTIAPPEND path, with LITERAL+, has no such
// case; appendEach is only for servers without it.)
func (w *worker) appendEach(j *folderJob, ups []*upload) (done, refused []*upload, err error) {
	type sent struct {
		u   *upload
		cmd *imapclient.AppendCommand
	}
	var inflight []sent
	wait := func(p sent) error {
		data, err := p.cmd.Wait()
		var no *imap.Error
		if errors.As(err, &no) {
			w.s.log.Warn("the server refused a message", "folder", j.rf.Local, "file", p.u.m.File, "err", err)
			p.u.refusal = err
			refused = append(refused, p.u)
			return nil
		}
		if err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		if data.UID != 0 { // else no UIDPLUS: the intent stays; the next run matches the copy
			p.u.uid = uint32(data.UID)
			done = append(done, p.u)
		}
		return nil
	}
	for _, u := range ups {
		cmd := w.c.Append(j.rf.Remote, u.size, &imap.AppendOptions{Flags: u.flags, Time: u.m.InternalDate})
		if err := errors.Join(u.send(cmd), cmd.Close()); err != nil {
			return done, refused, abort(w.c, fmt.Errorf("APPEND %s: %w", u.m.Key, err))
		}
		inflight = append(inflight, sent{u, cmd})
		if len(inflight) >= appendWindow {
			if err := wait(inflight[0]); err != nil {
				return done, refused, err
			}
			inflight = inflight[1:]
		}
	}
	for _, p := range inflight {
		if err := wait(p); err != nil {
			return done, refused, err
		}
	}
	return done, refused, nil
}

// multiAppend uploads with MULTIAPPEND on the run's uploader (see
// Uploader.AppendAll). It returns the uploads whose UID the server told,
// and those it refused.
func (w *worker) multiAppend(ctx context.Context, j *folderJob, up *imapconn.Uploader, ups []*upload) (done, refused []*upload, err error) {
	msgs := make([]imapconn.UploadMsg, len(ups))
	for i, u := range ups {
		msgs[i] = imapconn.UploadMsg{Flags: u.flags, Date: u.m.InternalDate, Size: u.size, Write: u.send}
	}
	err = up.AppendAll(ctx, j.rf.Remote, msgs, func(i int, uid uint32, no error) {
		u := ups[i]
		switch {
		case no != nil:
			w.s.log.Warn("the server refused a message", "folder", j.rf.Local, "file", u.m.File, "err", no)
			u.refusal = no
			refused = append(refused, u)
		case uid != 0: // else no UIDPLUS: the intent stays; the next run matches the copy
			u.uid = uid
			done = append(done, u)
		}
	})
	if err != nil {
		err = fmt.Errorf("APPEND: %w", err)
	}
	return done, refused, err
}
