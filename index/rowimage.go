package index

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Row images: what a sync compares a changed folder's listing with instead
// of reading every row of the folder (sync/imapsync's scan). An image is,
// for each row, its id, UID and a 64-bit hash of its key and file name,
// sorted by the hash; 20 bytes a row where a row read from SQLite costs about 2.5 µs.
//
// An image is recorded as of a local MODSEQ (table row_images). Every
// change to what it holds (a row added, moved in, or given another key,
// file or UID) gives the row a greater MODSEQ than any read before it:
// the Tx mutators do, and a trigger (sql/015_row_images.sql) covers the
// updates that change no flags. So the rows changed since are the ones
// with a greater MODSEQ (messages_folder_modseq), and ReadTx.RowImage
// brings the image up to date with them. Rows removed or moved away leave
// no such trace: their entries stay, and the caller tells them by the row
// count (Len beyond the count is how many) and by looking up the ids it
// did not find on disk.

// RowImage is a folder's rows as of a local MODSEQ (see above).
type RowImage struct {
	ModSeq   uint64 // the folder's local MODSEQ the entries are as of
	CaughtUp int    // rows read to bring the recorded image up to ModSeq
	ents     []imageEnt
}

type imageEnt struct {
	hash uint64
	id   MessageID
	uid  uint32
}

const imageVersion, imageEntSize = 1, 20

// FileHash is the hash a RowImage keeps of a row's key and file name:
// FNV-1a of key, a NUL, and sub + "/" + name (the row's file, "cur/<name>"),
// without building that string.
func FileHash(key, sub, name string) uint64 {
	return fnvAdd(fnvAdd(fnvAdd(rowKeyHash(key), sub), "/"), name)
}

func rowKeyHash(key string) uint64 { return fnvAdd(fnvAdd(fnvOffset, key), "\x00") }

func fileRowHash(key, file string) uint64 { return fnvAdd(rowKeyHash(key), file) }

const fnvOffset, fnvPrime = 14695981039346656037, 1099511628211

func fnvAdd(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// Len returns how many entries the image has: the folder's rows, and the
// ones removed or moved away since it was recorded.
func (im *RowImage) Len() int { return len(im.ents) }

// Find returns the entry whose key and file name hash to h (FileHash).
//
// The hashes are spread evenly over 64 bits, so the entry is near where h
// would sit if they were evenly spaced: the search starts there and
// widens, doubling, until it has h between two entries, then halves that
// span. A plain binary search of a folder of 40,000 took 16 probes, each
// likely a cache miss (a sync looks up every file of a changed folder);
// this takes about 4.
func (im *RowImage) Find(h uint64) (int, bool) {
	ents := im.ents
	n := len(ents)
	if n == 0 {
		return 0, false
	}
	guess, _ := bits.Mul64(h, uint64(n)) // h/2^64 of the way in
	lo, hi := int(guess), int(guess)+1   // the span searched: ents[lo:hi]
	for step := 1; lo > 0 && ents[lo].hash > h; step *= 2 {
		hi, lo = lo, max(0, lo-step)
	}
	for step := 1; hi < n && ents[hi-1].hash < h; step *= 2 {
		lo, hi = hi, min(n, hi+step)
	}
	i, found := slices.BinarySearchFunc(ents[lo:hi], h, func(e imageEnt, h uint64) int { return cmp.Compare(e.hash, h) })
	return lo + i, found
}

// Row returns entry i's row id and UID.
func (im *RowImage) Row(i int) (MessageID, uint32) { return im.ents[i].id, im.ents[i].uid }

// Without returns the image without the entries of the rows gone, for
// recording once the caller found which rows those are.
func (im *RowImage) Without(gone map[MessageID]bool) *RowImage {
	out := &RowImage{ModSeq: im.ModSeq, ents: make([]imageEnt, 0, len(im.ents)-len(gone))}
	for _, e := range im.ents {
		if !gone[e.id] {
			out.ents = append(out.ents, e)
		}
	}
	return out
}

// RowImageBuilder collects a folder's rows into a RowImage.
type RowImageBuilder struct{ ents []imageEnt }

// Add takes rows (of FileRowChunks, say) into the image.
func (b *RowImageBuilder) Add(rows []FileRow) {
	for _, r := range rows {
		b.ents = append(b.ents, imageEnt{fileRowHash(r.Key, r.File), r.ID, r.UID})
	}
}

// Image returns the image of the rows added, as of modseq (read in the
// same transaction as the rows): nil when two rows share a hash, which an
// image cannot tell apart.
func (b *RowImageBuilder) Image(modseq uint64) *RowImage {
	ents := b.ents
	b.ents = nil
	slices.SortFunc(ents, func(a, b imageEnt) int { return cmp.Compare(a.hash, b.hash) })
	if !uniqueHashes(ents) {
		return nil
	}
	return &RowImage{ModSeq: modseq, ents: ents}
}

func uniqueHashes(ents []imageEnt) bool {
	for i := 1; i < len(ents); i++ {
		if ents[i].hash == ents[i-1].hash {
			return false
		}
	}
	return true
}

// LocalModSeq returns the folder's local MODSEQ.
func (tx *ReadTx) LocalModSeq(folder FolderID) (uint64, error) {
	var modseq uint64
	err := tx.queryRow(`SELECT local_modseq FROM folders WHERE id=?`, folder).Scan(&modseq)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("index: folder %d: %w", folder, err)
	}
	return modseq, nil
}

// HasRowImage reports whether an image of the folder's rows is recorded.
func (tx *ReadTx) HasRowImage(folder FolderID) (bool, error) {
	var n int
	if err := tx.queryRow(`SELECT count(*) FROM row_images WHERE folder_id=?`, folder).Scan(&n); err != nil {
		return false, fmt.Errorf("index: row image: %w", err)
	}
	return n > 0, nil
}

// RowImage returns the folder's recorded image brought up to the rows as
// they are (to the folder's local MODSEQ): the rows changed since replace
// or join their entries. It returns nil when none is recorded, or the
// recorded one cannot be used (from a later MODSEQ than the folder's: an
// index set back; not readable; two rows with one hash).
func (tx *ReadTx) RowImage(folder FolderID) (*RowImage, error) {
	var since uint64
	var blob []byte
	err := tx.queryRow(`SELECT modseq, image FROM row_images WHERE folder_id=?`, folder).Scan(&since, &blob)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("index: row image: %w", err)
	}
	now, err := tx.LocalModSeq(folder)
	if err != nil {
		return nil, err
	}
	if since > now || len(blob) < 1 || blob[0] != imageVersion || (len(blob)-1)%imageEntSize != 0 {
		return nil, nil
	}
	ents := make([]imageEnt, (len(blob)-1)/imageEntSize)
	for i := range ents {
		b := blob[1+i*imageEntSize:]
		ents[i] = imageEnt{binary.LittleEndian.Uint64(b), MessageID(binary.LittleEndian.Uint64(b[8:])), binary.LittleEndian.Uint32(b[16:])}
	}
	im := &RowImage{ModSeq: now, ents: ents}
	if since == now {
		return im, nil
	}
	rows, err := tx.query(`SELECT id, uid, key, file FROM messages INDEXED BY messages_folder_modseq
		WHERE folder_id=? AND modseq>?`, folder, since)
	if err != nil {
		return nil, fmt.Errorf("index: row image: %w", err)
	}
	defer rows.Close()
	var changed []imageEnt
	for rows.Next() {
		var e imageEnt
		var key, file string
		if err := rows.Scan(&e.id, &e.uid, &key, &file); err != nil {
			return nil, fmt.Errorf("index: row image: %w", err)
		}
		e.hash = fileRowHash(key, file)
		changed = append(changed, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index: row image: %w", err)
	}
	im.CaughtUp = len(changed)
	im.ents = mergeChanged(ents, changed)
	if !uniqueHashes(im.ents) {
		return nil, nil
	}
	return im, nil
}

// mergeChanged returns ents (sorted by hash) with the entries of the rows
// in changed replaced by those, or joined where new.
func mergeChanged(ents, changed []imageEnt) []imageEnt {
	ids := make(map[MessageID]bool, len(changed))
	for _, e := range changed {
		ids[e.id] = true
	}
	slices.SortFunc(changed, func(a, b imageEnt) int { return cmp.Compare(a.hash, b.hash) })
	out := make([]imageEnt, 0, len(ents)+len(changed))
	j := 0
	for _, e := range ents {
		if ids[e.id] {
			continue
		}
		for j < len(changed) && changed[j].hash < e.hash {
			out = append(out, changed[j])
			j++
		}
		out = append(out, e)
	}
	return append(out, changed[j:]...)
}

// SetRowImage records the folder's row image. It records nothing when
// the folder's local MODSEQ is below the image's: the folder was removed
// since the image was read, and the one there now (a folder created again,
// which may have the removed one's id) starts its MODSEQs anew, below the
// image's; read as its image once its MODSEQ passed that, the removed
// folder's entries would be taken for its rows (their ids reused).
func (s *Store) SetRowImage(ctx context.Context, folder FolderID, im *RowImage) error {
	blob := make([]byte, 1, 1+len(im.ents)*imageEntSize)
	blob[0] = imageVersion
	for _, e := range im.ents {
		blob = binary.LittleEndian.AppendUint64(blob, e.hash)
		blob = binary.LittleEndian.AppendUint64(blob, uint64(e.id))
		blob = binary.LittleEndian.AppendUint32(blob, e.uid)
	}
	return s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(`INSERT INTO row_images(folder_id, modseq, image) SELECT ?1, ?2, ?3
			WHERE (SELECT local_modseq FROM folders WHERE id=?1) >= ?2
			ON CONFLICT(folder_id) DO UPDATE SET modseq=excluded.modseq, image=excluded.image`, folder, int64(im.ModSeq), blob)
		if err != nil {
			return fmt.Errorf("index: row image: %w", err)
		}
		return nil
	})
}
