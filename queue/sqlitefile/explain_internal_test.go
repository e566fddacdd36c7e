package sqlitefile

import (
	"io/fs"
	"syscall"
	"testing"
)

// fakeProbe answers createIn with createErr and openForWriting with the
// error listed for the path (nil for the others).
type fakeProbe struct {
	createErr error
	openErr   map[string]error
}

func (p fakeProbe) createIn(string) error            { return p.createErr }
func (p fakeProbe) openForWriting(path string) error { return p.openErr[path] }

// Read-only file systems and permissions cannot be set up by a test that
// may run as root (which may write anything): the probe's answers are
// faked here; TestExplain covers the real calls.
func TestWhyNotWritable(t *testing.T) {
	const db = "/data/order.db"
	tests := []struct {
		name  string
		probe fakeProbe
		want  string
	}{
		{"all writable", fakeProbe{}, ""},
		{"read-only file system", fakeProbe{createErr: &fs.PathError{Op: "open", Path: "/data/x", Err: syscall.EROFS}},
			"the file system holding /data is read-only"},
		{"directory not writable", fakeProbe{createErr: &fs.PathError{Op: "open", Path: "/data/x", Err: syscall.EACCES}},
			"this process may not create files in /data (SQLite creates order.db-wal and order.db-shm there)"},
		{"no directory", fakeProbe{createErr: &fs.PathError{Op: "open", Path: "/data/x", Err: syscall.ENOENT}},
			"directory /data does not exist"},
		{"file not writable", fakeProbe{openErr: map[string]error{db: &fs.PathError{Op: "open", Path: db, Err: syscall.EACCES}}},
			"/data/order.db is read-only for this process"},
		{"leftover -shm not writable", fakeProbe{openErr: map[string]error{db + "-shm": &fs.PathError{Op: "open", Path: db + "-shm", Err: syscall.EPERM}}},
			"/data/order.db-shm is read-only for this process"},
		{"missing -wal is fine", fakeProbe{openErr: map[string]error{db + "-wal": &fs.PathError{Op: "open", Path: db + "-wal", Err: syscall.ENOENT}}},
			""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := whyNotWritable(db, tc.probe); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
