// Package recipes embeds the built-in Lua recipes, which spell out every deploy
// step, and the systemd unit and Caddy site templates they render.
package recipes

import "embed"

// FS holds binary.lua, python.lua, common.lua and templates/.
//
//go:embed *.lua templates
var FS embed.FS
