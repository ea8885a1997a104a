package pop3

import (
	"crypto/sha256"
	"hash"
	"io"

	"github.com/postfach/postfach/index"
)

// headerHasher hashes a message's header as it is stored: the lines before
// the first empty line, each with its LF. In crlf mode it reads what the
// server sends and turns CRLF into LF first, as maildir.Delivery does (a CR
// not followed by LF is kept); otherwise it reads a stored file. A last
// header line without a line end (a message that is all header) counts with
// one, so that a TOP reply and a stored copy agree however the server ends
// a header without a body.
//
// The hash of a server message's TOP n 0 equals the hash of its stored copy
// exactly when their headers are the same; it is recorded with the
// message's identity (index.POP3UIDL.HeaderSHA256).
type headerHasher struct {
	h    hash.Hash
	buf  []byte
	crlf bool
	cr   bool // crlf mode: a CR is held back, it may start a CRLF
	bol  bool // the next byte starts a line
	done bool // the empty line was seen
}

func newHeaderHasher(crlf bool) *headerHasher {
	return &headerHasher{h: sha256.New(), buf: make([]byte, 0, 4<<10), crlf: crlf, bol: true}
}

// Write takes the next bytes of the message; it never fails. Once the
// header has ended it ignores the rest, cheaply.
func (hh *headerHasher) Write(p []byte) (int, error) {
	for _, b := range p {
		if hh.done {
			break
		}
		if hh.crlf {
			if hh.cr {
				hh.cr = false
				if b == '\n' {
					hh.emit('\n')
					continue
				}
				hh.emit('\r')
			}
			if b == '\r' {
				hh.cr = true
				continue
			}
		}
		hh.emit(b)
	}
	return len(p), nil
}

func (hh *headerHasher) emit(b byte) {
	if hh.done {
		return
	}
	if b == '\n' && hh.bol {
		hh.done = true
		return
	}
	hh.bol = b == '\n'
	hh.buf = append(hh.buf, b)
	if len(hh.buf) == cap(hh.buf) {
		hh.h.Write(hh.buf)
		hh.buf = hh.buf[:0]
	}
}

// Done reports whether the header has ended.
func (hh *headerHasher) Done() bool { return hh.done }

// Sum returns the hash of the header. Call it once, after the last Write.
func (hh *headerHasher) Sum() [32]byte {
	if hh.cr {
		hh.cr = false
		hh.emit('\r')
	}
	if !hh.done && !hh.bol {
		hh.emit('\n')
	}
	hh.h.Write(hh.buf)
	hh.buf = hh.buf[:0]
	var out [32]byte
	hh.h.Sum(out[:0])
	return out
}

// fileHeader returns the header hash (headerHasher) of the stored message
// m of folder, reading no more of the file than its header. An error wraps
// fs.ErrNotExist when the file is gone.
func fileHeader(st *index.Store, folder *index.Folder, m *index.Message) ([32]byte, error) {
	f, err := st.OpenMessage(folder, m)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	hh := newHeaderHasher(false)
	buf := make([]byte, 8<<10)
	for !hh.Done() {
		n, err := f.Read(buf)
		hh.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return [32]byte{}, err
		}
	}
	return hh.Sum(), nil
}

// fileSHA256 returns the SHA-256 of the stored message m of folder.
func fileSHA256(st *index.Store, folder *index.Folder, m *index.Message) ([32]byte, error) {
	var out [32]byte
	f, err := st.OpenMessage(folder, m)
	if err != nil {
		return out, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return out, err
	}
	h.Sum(out[:0])
	return out, nil
}
