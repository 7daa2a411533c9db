package app

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/design.md's layout is the code's: it names every package under
// internal/, and no package that is not there.
func TestDesignLayoutIsTheCode(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "## Layout")
	if start < 0 {
		t.Fatal("docs/design.md has no Layout section")
	}
	layout := doc[start:]
	var packages []string
	err = filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		dir := "internal/" + filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../")))
		if !slices.Contains(packages, dir) {
			packages = append(packages, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packages {
		top := strings.Join(strings.Split(p, "/")[:2], "/")
		if !strings.Contains(layout, top+"/") {
			t.Errorf("docs/design.md's layout does not name %s/", top)
		}
	}
	// Each package's entry (its line and the indented ones below it)
	// names only files the package has.
	for _, entry := range regexp.MustCompile(`(?m)^internal/([a-z]+)/ (.*\n(?: {10,}.*\n)*)`).FindAllStringSubmatch(layout, -1) {
		if _, err := os.Stat("../" + entry[1]); err != nil {
			t.Errorf("docs/design.md's layout names internal/%s/, which is not there", entry[1])
			continue
		}
		for _, file := range regexp.MustCompile(`\b[a-z_]+\.go\b`).FindAllString(entry[2], -1) {
			if _, err := os.Stat(filepath.Join("..", entry[1], file)); err != nil {
				t.Errorf("docs/design.md's layout names internal/%s/%s, which is not there", entry[1], file)
			}
		}
	}
}
