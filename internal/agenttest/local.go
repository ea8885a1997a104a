package agenttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postfach/postfach/maildir"
)

// Maildir is another program working in the agent's store, as a mail
// reader or a delivery agent would: it adds files (through tmp/), renames
// them for flags, moves them between folders and deletes them, and reads
// what the store holds. It finds a message's file by its Message-ID,
// reading each file's header once per key (a rename keeps the key). It is
// safe for concurrent use.
type Maildir struct {
	root, account string
	model         *Model

	mu   sync.Mutex
	keys map[string]string // file key -> Message-ID
}

// NewMaildir works in account's part of the store at root.
func NewMaildir(root, account string, model *Model) *Maildir {
	return &Maildir{root: root, account: account, model: model, keys: map[string]string{}}
}

// Dir is the directory of a folder.
func (l *Maildir) Dir(folder string) string {
	dir, err := maildir.FolderDir(l.root, l.account, folder)
	if err != nil {
		panic(err) // the harness's own folder names
	}
	return dir
}

var keySeq atomic.Int64

// newKey is a unique file key as a mail program makes one.
func newKey() string {
	return fmt.Sprintf("%d.%d_%d.agenttest", time.Now().Unix(), os.Getpid(), keySeq.Add(1))
}

// fileName is the name of a message file with flags: "<key>:2,<flags>".
func fileName(key string, flags maildir.Flags) string {
	return key + ":" + flags.Info()
}

// Add writes a new message into folder as a delivery agent would (into
// new/ with a bare name) or, with flags, as a mail reader saving one (into
// cur/ with its flags), through tmp/.
func (l *Maildir) Add(folder string, flags maildir.Flags, owner Side) (Msg, error) {
	dir := l.Dir(folder)
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return Msg{}, err
		}
	}
	msg := l.model.newMsg(folder, owner)
	key := newKey()
	l.model.update(msg.ID, "local: written as "+key+" with "+flags.Info(), func(m *Msg) { m.Flags = flags })
	tmp := filepath.Join(dir, "tmp", key)
	if err := os.WriteFile(tmp, msg.Body, 0o600); err != nil {
		return Msg{}, err
	}
	final := filepath.Join(dir, "new", key)
	if flags != 0 {
		final = filepath.Join(dir, "cur", fileName(key, flags))
	}
	l.mu.Lock()
	l.keys[key] = msg.ID
	l.mu.Unlock()
	if err := os.Rename(tmp, final); err != nil {
		return Msg{}, err
	}
	got, _ := l.model.Get(msg.ID)
	return got, nil
}

// retries bounds how often an operation looks a file up again when the
// agent renamed it between the lookup and the operation.
const retries = 20

// SetFlags renames the message's file to carry flags, into cur/ (as a
// reader marks a message). ErrNotThere when it is not in its folder.
func (l *Maildir) SetFlags(msg Msg, flags maildir.Flags) error {
	var note string
	err := l.withFile(msg, func(path string, e maildir.Entry) error {
		name := e.Name
		if i := bytes.IndexByte([]byte(name), ':'); i >= 0 {
			name = name[:i]
		}
		note = "local: " + e.Sub + "/" + e.Name + " renamed to cur/" + name + ":" + flags.Info()
		return rename(path, filepath.Join(l.Dir(msg.Folder), "cur", name+":"+flags.Info()))
	})
	if err == nil {
		l.model.update(msg.ID, note, func(m *Msg) { m.Flags = flags })
	}
	return err
}

// Move moves the message's file to folder dst under a new name with the
// same flags, as a mail reader does.
func (l *Maildir) Move(msg Msg, dst string) error {
	ddir := l.Dir(dst)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(ddir, sub), 0o700); err != nil {
			return err
		}
	}
	var note string
	err := l.withFile(msg, func(path string, e maildir.Entry) error {
		key := newKey()
		l.mu.Lock()
		l.keys[key] = msg.ID
		l.mu.Unlock()
		note = "local: " + msg.Folder + " " + e.Sub + "/" + e.Name + " moved to " + dst + " cur/" + fileName(key, e.Flags)
		return rename(path, filepath.Join(ddir, "cur", fileName(key, e.Flags)))
	})
	if err == nil {
		l.model.update(msg.ID, note, func(m *Msg) { m.Moved, m.Folder = m.Folder, dst })
	}
	return err
}

// Delete removes the message's file.
func (l *Maildir) Delete(msg Msg) error {
	var note string
	err := l.withFile(msg, func(path string, e maildir.Entry) error {
		note = "local: " + msg.Folder + " " + e.Sub + "/" + e.Name + " deleted"
		return os.Remove(path)
	})
	if err == nil {
		l.model.update(msg.ID, note, func(m *Msg) { m.Gone = true })
	}
	return err
}

// rename renames without replacing an existing file.
func rename(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("rename %s: %s exists", from, to)
	}
	return os.Rename(from, to)
}

// withFile runs op on the message's one file in its folder, looking it up
// again when op finds it gone (the agent renamed it meanwhile).
func (l *Maildir) withFile(msg Msg, op func(path string, e maildir.Entry) error) error {
	for range retries {
		files, err := l.scanFolder(msg.Folder, false)
		if err != nil {
			return err
		}
		var found []fileSeen
		for _, f := range files {
			if f.id == msg.ID {
				found = append(found, f)
			}
		}
		if len(found) != 1 {
			return fmt.Errorf("%w: %s has %d files in local %s", ErrNotThere, msg.ID, len(found), msg.Folder)
		}
		err = op(found[0].path, found[0].entry)
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return fmt.Errorf("%s in local %s: renamed under us %d times", msg.ID, msg.Folder, retries)
}

type fileSeen struct {
	path  string
	entry maildir.Entry
	id    string
	body  []byte
}

// scanFolder lists the message files of a folder (cur/ and new/) with
// their Message-IDs, and their bytes when withBody. A missing folder has
// none; a file gone while it is read is left out.
func (l *Maildir) scanFolder(folder string, withBody bool) ([]fileSeen, error) {
	dir := l.Dir(folder)
	var out []fileSeen
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, de := range ents {
			e, ok := maildir.ParseName(de.Name())
			if !ok || de.IsDir() {
				continue
			}
			e.Sub = sub
			path := filepath.Join(dir, sub, de.Name())
			f := fileSeen{path: path, entry: e}
			l.mu.Lock()
			id, known := l.keys[e.Key]
			l.mu.Unlock()
			if withBody || !known {
				data, err := readHead(path, withBody)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, err
				}
				id = MessageID(data)
				if withBody {
					f.body = data
				}
				l.mu.Lock()
				l.keys[e.Key] = id
				l.mu.Unlock()
			}
			f.id = id
			out = append(out, f)
		}
	}
	return out, nil
}

// readHead reads a file whole, or its first 4 KB (enough for the harness's
// headers).
func readHead(path string, whole bool) ([]byte, error) {
	if whole {
		return os.ReadFile(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// Snapshot reads every message file of the model's folders: Message-ID ->
// copies (folder, flags from the name, path; bytes when withBody). A
// file in new/ without info has no flags. Files in tmp/ are left out
// (see TmpFiles).
func (l *Maildir) Snapshot(withBody bool) (map[string][]Seen, error) {
	out := map[string][]Seen{}
	for _, f := range l.model.Folders {
		files, err := l.scanFolder(f, withBody)
		if err != nil {
			return nil, err
		}
		for _, fs := range files {
			out[fs.id] = append(out[fs.id], Seen{Folder: f, Flags: fs.entry.Flags, Body: fs.body, Where: fs.entry.Sub + "/" + fs.entry.Name})
		}
	}
	return out, nil
}

// writeFile writes a file, for tests of the harness.
func writeFile(path string, data []byte) error { return os.WriteFile(path, data, 0o600) }
