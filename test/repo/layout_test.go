// Package repo checks the repository against its own documentation.
package repo

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, two folders up from this package.
const root = "../.."

// TestReadmeLayout: every folder the README's Layout table names exists,
// and every Go package is in a folder the table names (itself or a parent),
// so the table cannot fall behind a move or a new package.
func TestReadmeLayout(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := layoutFolders(t, string(b))
	for f := range listed {
		if st, err := os.Stat(filepath.Join(root, f)); err != nil || !st.IsDir() {
			t.Errorf("README layout names %s, which is not a folder", f)
		}
	}
	for _, p := range goPackages(t) {
		if !covered(p, listed) {
			t.Errorf("package folder %s is not in the README's layout table", p)
		}
	}
}

// TestLayoutCheckFails: the check finds a package the table leaves out.
func TestLayoutCheckFails(t *testing.T) {
	listed := layoutFolders(t, "# R\n## Layout\n\n| folder | what |\n|---|---|\n| `sip` | x |\n\n## Next\n")
	if covered("media", listed) || !covered("sip/caller", listed) {
		t.Errorf("covered() is wrong for %v", listed)
	}
}

var folderCell = regexp.MustCompile("`([^`]+)`")

// layoutFolders reads the first column of the table under "## Layout".
func layoutFolders(t *testing.T, readme string) map[string]bool {
	_, sec, ok := strings.Cut(readme, "\n## Layout\n")
	if !ok {
		t.Fatal("README has no ## Layout section")
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	out := map[string]bool{}
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range folderCell.FindAllStringSubmatch(cells[1], -1) {
			out[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("README's layout table names no folder")
	}
	return out
}

// goPackages lists the folders holding Go files, relative to the root.
func goPackages(t *testing.T) []string {
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			seen[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	return out
}

// covered reports whether p or one of its parent folders is listed.
func covered(p string, listed map[string]bool) bool {
	for p != "." && p != "" {
		if listed[p] {
			return true
		}
		p = filepath.ToSlash(filepath.Dir(p))
	}
	return false
}
