package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// maxManifest bounds the manifest read from an archive into memory
// (about 100 bytes a file: a 100,000-message store's is about 10 MB).
const maxManifest = 256 << 20

// maxWindow bounds the zstd window an archive may declare: the decoder
// holds a window of history, so an archive declaring a huge one would
// exhaust memory. The writer's is 8 MiB (zstd's default level).
const maxWindow = 64 << 20

// tarSink receives what scanTar unpacks; nil for verify, which only
// hashes (and keeps the index, see indexTo).
type tarSink interface {
	dir(rel string) error
	// file returns where the content of the regular file rel goes (nil:
	// nowhere); it is closed after the content.
	file(rel string) (io.WriteCloser, error)
}

// tarScan is what scanTar found in an archive.
type tarScan struct {
	manifest []byte           // nil when it has none
	present  map[string]bool  // its regular files (not the manifest)
	hashed   map[string]Entry // their sizes and SHA-256
}

// openTar opens the tar.zst at p for reading; done closes it.
func openTar(p string) (tr *tar.Reader, done func(), err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	// One decoder goroutine: it also checks the window of a
	// single-segment frame (its declared content size) against maxWindow.
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return tar.NewReader(zr), func() { zr.Close(); f.Close() }, nil
}

// tarSize returns how many bytes the regular files of the tar.zst at p
// hold, from their tar headers (the manifest comes last, so the archive
// is read through once for it; only the headers are kept).
func tarSize(ctx context.Context, p string) (int64, error) {
	tr, done, err := openTar(p)
	if err != nil {
		return 0, err
	}
	defer done()
	var n int64
	last := "its start"
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, tarError("after "+last, err)
		}
		last = fmt.Sprintf("%q", strings.TrimSuffix(hdr.Name, "/"))
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			n += min(hdr.Size, math.MaxInt64-n) // no overflow
		}
	}
}

// scanTar reads the tar.zst at p, one entry at a time: each regular
// file's content is hashed and given to sink; an entry that is not a
// directory or a regular file, or whose path would leave the snapshot,
// or that comes twice, is a difference in r and never given to sink. An
// error: the archive could not be read through (damaged, cut short).
func scanTar(ctx context.Context, p string, sink tarSink, r *Report, progress Progress) (*tarScan, error) {
	tr, done, err := openTar(p)
	if err != nil {
		return nil, err
	}
	defer done()
	s := &tarScan{present: map[string]bool{}, hashed: map[string]Entry{}}
	seen := map[string]bool{}
	last := "its start"
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, tarError("after "+last, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		last = fmt.Sprintf("%q", name)
		if seen[name] {
			r.add(name, "in the archive twice")
			continue
		}
		seen[name] = true
		if name != ManifestName && !validPath(name) {
			r.add(name, "a path that leaves the snapshot: not unpacked")
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if sink != nil {
				if err := sink.dir(name); err != nil {
					return nil, err
				}
			}
			continue
		case tar.TypeReg:
		default:
			r.add(name, "not a regular file or directory (tar type %q): not unpacked", hdr.Typeflag)
			continue
		}
		if name == ManifestName {
			if hdr.Size > maxManifest {
				return nil, fmt.Errorf("its %s is too large (%d bytes; at most %d MiB are read)", ManifestName, hdr.Size, maxManifest>>20)
			}
			if s.manifest, err = io.ReadAll(io.LimitReader(tr, maxManifest)); err != nil {
				return nil, tarError("in "+last, err)
			}
			continue
		}
		var w io.WriteCloser
		if sink != nil {
			if w, err = sink.file(name); err != nil {
				return nil, err
			}
		}
		h := sha256.New()
		var dst io.Writer = h
		if w != nil {
			dst = io.MultiWriter(w, h)
		}
		buf := bufPool.Get().(*[]byte)
		n, err := io.CopyBuffer(dst, onlyReader{tr}, *buf)
		bufPool.Put(buf)
		if w != nil {
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, tarError("in "+last, err)
		}
		e := Entry{Path: name, Size: n}
		h.Sum(e.SHA256[:0])
		s.present[name], s.hashed[name] = true, e
		r.Files++
		r.Bytes += n
		if progress != nil {
			progress(r.Files, 0)
		}
	}
	return s, nil
}

// tarError is the error of an archive that could not be read through
// at where: damaged, or compressed with a window larger than maxWindow.
func tarError(where string, err error) error {
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return fmt.Errorf("the archive cannot be read %s: its zstd window is larger than the %d MiB postfach allows", where, maxWindow>>20)
	}
	return fmt.Errorf("the archive is damaged %s: %v", where, err)
}

// check compares what scanTar found with the archive's manifest and the
// index (unpacked at dbPath), adding the differences to r.
func (s *tarScan) check(r *Report, dbPath string) error {
	if s.manifest == nil {
		return errors.New("no " + ManifestName + " in the archive")
	}
	es, err := parseManifest(s.manifest)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(es))
	for _, e := range es {
		listed[e.Path] = true
	}
	for p := range s.present {
		if !listed[p] {
			r.add(p, "not in the manifest")
		}
	}
	return checkSnapshot(r, es, s.present, s.hashed, dbPath)
}

// indexOnly is the sink of a verify: it keeps the archive's index (in
// dir), nothing else.
type indexOnly struct{ to string }

func (indexOnly) dir(string) error { return nil }

func (k indexOnly) file(rel string) (io.WriteCloser, error) {
	if rel != ".postfach/index.db" {
		return nil, nil
	}
	return os.OpenFile(filepath.Join(k.to, "index.db"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// VerifyArchive checks the tar.zst snapshot at p as VerifySnapshot
// checks a directory: every file its manifest lists is in it with its
// size and SHA-256, no other file is (nor anything but files and
// directories), and its index and message files agree. The index is
// unpacked into a temporary directory for the comparison; nothing else
// is written. An error means it could not be checked at all.
func VerifyArchive(ctx context.Context, p string, progress Progress) (*Report, error) {
	tmp, err := os.MkdirTemp("", "postfach-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", p, err)
	}
	defer os.RemoveAll(tmp)
	r := &Report{}
	s, err := scanTar(ctx, p, indexOnly{to: tmp}, r, progress)
	if err == nil {
		err = s.check(r, filepath.Join(tmp, "index.db"))
	}
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", p, err)
	}
	r.sort()
	return r, nil
}
