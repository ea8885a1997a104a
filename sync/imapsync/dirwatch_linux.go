//go:build linux

package imapsync

import (
	"errors"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/postfach/postfach/index"
)

// inotifyWatch is dirWatch on Linux: one inotify instance, never read
// until drain, which reads what the kernel queued. An event is queued
// within the system call that made it, before the call lets go of the
// directory's lock: a drain after a read of the directory (settle) has
// the events of every change whose directory time the read could see.
// Only local filesystems are watched (localFS).
type inotifyWatch struct {
	mu  sync.Mutex
	fd  int
	wds map[int32]watchedDir
}

type watchedDir struct {
	folder index.FolderID
	sub    string // "cur" or "new"
}

// watchMask: the changes to a directory's names, and its own end (removed,
// renamed: its folder's events no longer say all). IN_Q_OVERFLOW and
// IN_IGNORED come unasked.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

func newDirWatch() (dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &inotifyWatch{fd: fd, wds: map[int32]watchedDir{}}, nil
}

// localFS are the filesystems whose every change goes through this
// kernel, so through its inotify: a network or shared one (NFS, CIFS,
// FUSE such as sshfs, 9p, virtiofs) is changed by other machines unseen.
var localFS = map[int64]bool{
	0xEF53:     true, // ext2, ext3, ext4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0xF2F52010: true, // f2fs
	0x2FC12FC1: true, // zfs
	0xCA451A4E: true, // bcachefs
	0x794C7630: true, // overlayfs (a container's: changed through this kernel)
}

func (w *inotifyWatch) add(folder index.FolderID, sub, path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	if !localFS[int64(st.Type)] {
		return errors.New("not a local filesystem: changes from elsewhere would go unseen")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return errors.New("closed")
	}
	wd, err := unix.InotifyAddWatch(w.fd, path, watchMask)
	if err != nil {
		return err
	}
	if d, ok := w.wds[int32(wd)]; ok && d != (watchedDir{folder, sub}) {
		return errors.New("a directory watched twice") // one directory for two folders: not for us to vouch
	}
	w.wds[int32(wd)] = watchedDir{folder, sub}
	return nil
}

func (w *inotifyWatch) drain() (dirEvents, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ev := dirEvents{names: map[index.FolderID][]string{}, lost: map[index.FolderID]bool{}}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return ev, nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ev, err
		}
		if n <= 0 {
			return ev, errors.New("inotify: short read")
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(raw.Len)
			if end > n {
				return ev, errors.New("inotify: event cut short")
			}
			name := buf[off+unix.SizeofInotifyEvent : end]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			off = end
			if raw.Mask&unix.IN_Q_OVERFLOW != 0 {
				return ev, errors.New("inotify: queue overflow")
			}
			d, ok := w.wds[raw.Wd]
			if !ok {
				continue
			}
			if raw.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED|unix.IN_UNMOUNT) != 0 {
				ev.lost[d.folder] = true
				continue
			}
			if len(name) > 0 {
				ev.names[d.folder] = append(ev.names[d.folder], d.sub+"/"+string(name))
			}
		}
	}
}

// close lets go of the instance without waiting for the kernel to: the
// last close of an inotify instance with watches waits out a grace period
// of the kernel's (synchronize_srcu, in fsnotify_destroy_group) before it
// returns, 7 to 16 ms measured at the end of a 10,000-message run, where
// nothing else waits for it. So the descriptor is closed on a goroutine of
// its own; for this watch it is closed at once (add and drain fail after
// it, as before).
func (w *inotifyWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		go unix.Close(w.fd)
		w.fd = -1
	}
}
