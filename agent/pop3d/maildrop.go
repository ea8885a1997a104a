package pop3d

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// entry is one message of a session's maildrop.
type entry struct {
	id      index.MessageID
	key     string // Maildir key
	file    string // file name at login (OpenMessage finds a renamed one by key)
	size    int64  // wire size (CRLF line ends)
	uidl    string
	deleted bool
}

// maildrop is the snapshot of an account's served folder a session took
// at login.
type maildrop struct {
	account string
	folder  *index.Folder // nil: the folder does not exist (yet); empty
	msgs    []entry
}

// counts returns the number and total wire size of the messages not
// marked deleted.
func (md *maildrop) counts() (n int, size int64) {
	for i := range md.msgs {
		if !md.msgs[i].deleted {
			n++
			size += md.msgs[i].size
		}
	}
	return n, size
}

// uidlOf turns a Maildir key into a unique-id listing: the key itself when
// it is 1 to 70 characters of 0x21-0x7E (RFC 1939 section 7), else "~"
// and the hex SHA-256 of the key (65 characters).
func uidlOf(key string) string {
	ok := len(key) >= 1 && len(key) <= 70
	for i := 0; ok && i < len(key); i++ {
		ok = key[i] >= 0x21 && key[i] <= 0x7e
	}
	if ok {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "~" + hex.EncodeToString(sum[:])
}

// snapshot reads account's maildrop: the rows of its served folder in
// arrival order (local UID), with their wire sizes. A folder that does
// not exist makes an empty maildrop; a row whose file is gone is left out.
func (s *Server) snapshot(ctx context.Context, account string) (*maildrop, error) {
	md := &maildrop{account: account}
	var rows []*index.Message
	err := s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		acct, err := tx.Account(account)
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		f, err := tx.FolderByName(acct, s.folderOf(account))
		if errors.Is(err, index.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		md.folder = f
		rows, err = tx.LocalFiles(f.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pop3d: reading the maildrop of %s: %w", account, err)
	}
	md.msgs = make([]entry, 0, len(rows))
	for _, m := range rows {
		size, err := s.wireSize(ctx, md.folder, m)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by another program: the next scan drops the row
		}
		if err != nil {
			return nil, fmt.Errorf("pop3d: size of message %s in %s: %w", m.Key, md.folder.Name, err)
		}
		md.msgs = append(md.msgs, entry{id: m.ID, key: m.Key, file: m.File, size: size, uidl: uidlOf(m.Key)})
	}
	return md, nil
}

// wireSize returns m's size with CRLF line ends: its RFC822Size, or its
// file's, counted once and kept (by message id and size on disk).
func (s *Server) wireSize(ctx context.Context, f *index.Folder, m *index.Message) (int64, error) {
	if m.RFC822Size > 0 {
		return m.RFC822Size, nil
	}
	s.mu.Lock()
	memo, ok := s.sizes[m.ID]
	s.mu.Unlock()
	if ok && memo.disk == m.Size {
		return memo.wire, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b, err := s.o.Store.OpenMessage(f, m)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	wire, err := maildir.CRLFSize(b)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	if len(s.sizes) >= maxSizeMemo {
		clear(s.sizes)
	}
	s.sizes[m.ID] = sizeMemo{disk: b.Size, wire: wire}
	s.mu.Unlock()
	return wire, nil
}

// update removes the messages the session marked (the UPDATE state, at
// QUIT): their current rows, looked up by key (a message removed meanwhile
// has nothing left to remove), through the store's Expunge. It returns how
// many it removed.
func (s *Server) update(ctx context.Context, md *maildrop) (int, error) {
	if md.folder == nil {
		return 0, nil
	}
	// The rows are read, and expunged, in the account's turn: no sync run
	// moves or removes them in between (index.Store.LocalChange).
	release, err := s.o.Store.LocalChange(ctx, md.folder.ID)
	if err != nil {
		return 0, err
	}
	defer release()
	var rows []*index.Message
	err = s.o.Store.Read(ctx, func(tx *index.ReadTx) error {
		rows = rows[:0]
		for i := range md.msgs {
			e := &md.msgs[i]
			if !e.deleted {
				continue
			}
			m, err := tx.MessageByKey(md.folder.ID, e.key)
			if errors.Is(err, index.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			rows = append(rows, m)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	if err := s.expunge.Expunge(ctx, rows); err != nil {
		return 0, err
	}
	return len(rows), nil
}
