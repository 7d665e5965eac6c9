package modules

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// MaxPerRequest is how many modules one request may name (reference §1.1).
const MaxPerRequest = 50

// maxNameLen is npm's limit on package names.
const maxNameLen = 214

var (
	// nameRe is npm's rule for new package names: lower case, URL-safe,
	// optionally scoped (@scope/name), not starting with . or _.
	nameRe = regexp.MustCompile(`^(?:@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*$`)
	// versionRe is an exact semver version (no ranges, no tags).
	versionRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$`)
)

// ValidName reports whether name is a valid npm package name.
func ValidName(name string) bool { return len(name) <= maxNameLen && nameRe.MatchString(name) }

// ValidVersion reports whether v is an exact semver version.
func ValidVersion(v string) bool { return len(v) <= 256 && versionRe.MatchString(v) }

// Validate checks one spec: an ErrInvalid error naming it otherwise.
func Validate(m types.ModuleSpec) error {
	if !ValidName(m.Name) {
		return errdefs.Errorf(errdefs.ErrInvalid, "invalid npm module name %q", truncate(m.Name, 64))
	}
	if !ValidVersion(m.Version) {
		return errdefs.Errorf(errdefs.ErrInvalid, "module %s: version %q is not an exact version (x.y.z)", m.Name, truncate(m.Version, 64))
	}
	return nil
}

// ValidateAll checks a request's specs: 1..MaxPerRequest valid specs.
func ValidateAll(specs []types.ModuleSpec) error {
	if len(specs) == 0 {
		return errdefs.Errorf(errdefs.ErrInvalid, "`modules` must list at least one {name, version}")
	}
	if len(specs) > MaxPerRequest {
		return errdefs.Errorf(errdefs.ErrInvalid, "at most %d modules per request", MaxPerRequest)
	}
	for _, m := range specs {
		if err := Validate(m); err != nil {
			return err
		}
	}
	return nil
}

// Key is the content address of name@version in the module store: the hex
// sha256 of "name@version".
func Key(m types.ModuleSpec) string {
	sum := sha256.Sum256([]byte(m.String()))
	return hex.EncodeToString(sum[:])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
