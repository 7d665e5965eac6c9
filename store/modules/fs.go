package modules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// removeStaging removes the staging directories of installs a crashed
// run left behind.
func removeStaging(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), stagingPrefix) {
			if err := removeTree(filepath.Join(dir, de.Name())); err != nil {
				return fmt.Errorf("modules: %w", err)
			}
		}
	}
	return nil
}

// removeTree removes dir, read-only directories included (the store's
// trees are 0555); a missing dir is no error.
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// chownTree gives dir and everything below it to uid:gid when the daemon
// is root (else it does nothing: npm runs as the daemon's user).
func chownTree(dir string, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// copyTree copies the tree at src (written by the install user) to dst
// (created) as the daemon's user, never following a link: symbolic links
// are copied as links, regular files are opened O_NOFOLLOW, anything else
// is skipped.
func copyTree(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", src)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch t := d.Type(); {
		case t.IsDir():
			return os.Mkdir(to, 0o755)
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case t.IsRegular():
			return copyFile(p, to)
		default:
			return nil
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644|st.Mode().Perm()&0o111)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// makeReadOnly seals a tree the daemon copied: owned by the daemon's user,
// no write, setuid or setgid bit anywhere (directories 0555, files 0444 or
// 0555 when executable); symbolic links are left as they are.
func makeReadOnly(dir string) error {
	root := os.Geteuid() == 0
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if root {
			if err := os.Lchown(p, 0, 0); err != nil {
				return err
			}
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			return nil
		case info.IsDir():
			return os.Chmod(p, 0o555)
		case info.Mode().IsRegular():
			mode := fs.FileMode(0o444)
			if info.Mode()&0o111 != 0 {
				mode = 0o555
			}
			return os.Chmod(p, mode)
		default:
			// Devices, fifos, sockets have no place in a module tree.
			return os.Remove(p)
		}
	})
}

// treeSize is the disk use of dir in bytes (allocated blocks).
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil // npm moves files while it runs
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// noLinks reports whether no component of rel below root is a symbolic
// link (so reading root/rel reads what the tree holds, nothing outside).
func noLinks(root, rel string) bool {
	p := root
	for _, c := range strings.Split(filepath.ToSlash(rel), "/") {
		p = filepath.Join(p, c)
		st, err := os.Lstat(p)
		if err != nil || st.Mode()&fs.ModeSymlink != 0 {
			return false
		}
	}
	return true
}
