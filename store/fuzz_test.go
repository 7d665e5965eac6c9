package store

import (
	"context"
	"testing"
)

// FuzzListMetaFilter lists webtasks of a real database with a fuzzed meta
// filter (SQLite's json_each): the answer is exactly the webtasks whose
// meta holds the pair, computed in Go.
func FuzzListMetaFilter(f *testing.F) {
	for _, s := range [][2]string{
		{"team", "a"}, {"team", ""}, {"env", "prod"}, {"", ""}, {"team", "a'; DROP TABLE webtasks; --"},
		{"$.team", "a"}, {"team\x00", "a"}, {"é", "ü"}, {"n", "1"}, {"%", "_"}, {"TEAM", "a"}, {`"team"`, "a"},
	} {
		f.Add(s[0], s[1])
	}
	e := newEnv(f)
	s := e.open(f)
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	metas := map[string]map[string]string{
		"a": {"team": "a"}, "b": {"team": "a", "env": "prod"}, "c": {"team": "b", "n": "1"},
		"d": {}, "e": {"é": "ü", "%": "_", "$.team": "a", "": ""}, "f": {"team": ""},
	}
	for name, m := range metas {
		w := sample("c", name)
		w.Meta = m
		if _, err := s.PutWebtask(ctx, w); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		got, err := s.ListWebtasks(ctx, ListOptions{Container: "c", Meta: map[string]string{k: v}})
		if err != nil {
			t.Fatalf("list meta %q:%q: %v", k, v, err)
		}
		want := map[string]bool{}
		for name, m := range metas {
			if mv, ok := m[k]; ok && mv == v {
				want[name] = true
			}
		}
		if len(got) != len(want) {
			t.Fatalf("meta %q:%q listed %d webtasks, want %d (%v)", k, v, len(got), len(want), want)
		}
		for _, w := range got {
			if !want[w.Name] {
				t.Fatalf("meta %q:%q listed %s", k, v, w.Name)
			}
		}
	})
}
