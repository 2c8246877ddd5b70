package app

import "runtime/debug"

// Version names the build: the module's version when built from a tagged
// module, else "devel" with the commit it was built from (and "+dirty"
// for uncommitted changes), as the Go toolchain stamped it.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	version, dirty := "devel", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if len(s.Value) > 12 {
				s.Value = s.Value[:12]
			}
			version += "+" + s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		version += "+dirty"
	}
	return version
}
