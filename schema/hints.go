package schema

import (
	"bytes"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Messages CUE gives for features that need a CUE module, which
// descriptors are loaded without.
const (
	cueNotDefinedIn = " imported but not defined in "
	cueEmbedNoMod   = "cannot embed files when not in a module"
)

// explainModuleErrors completes CUE's errors about imports and @embed,
// which need a module: the import message ends in "defined in " with
// nothing after it, and the @embed one has no position. data is the file's
// content, to find the attribute.
func explainModuleErrors(errs []api.SourceError, data []byte) []api.SourceError {
	for i := range errs {
		e := &errs[i]
		switch {
		case strings.HasSuffix(strings.TrimRight(e.Message, " "), strings.TrimRight(cueNotDefinedIn, " ")):
			e.Message = strings.TrimRight(e.Message, " ")
			e.Message = strings.TrimSuffix(e.Message, " in") +
				": descriptors are loaded without a CUE module, so only CUE's standard library can be imported; write the definitions in the descriptor instead"
		case strings.Contains(e.Message, cueEmbedNoMod):
			e.Message = "@embed is not supported: descriptors are loaded without a CUE module, so files cannot be embedded; write the content in the descriptor instead"
			if e.Line == 0 {
				e.Line, e.Column = position(data, "@embed(")
				if e.Line == 0 {
					e.Line, e.Column = position(data, "@extern(")
				}
			}
		}
	}
	return errs
}

// position is the 1-based line and column of the first occurrence of s in
// data, or 0, 0.
func position(data []byte, s string) (int, int) {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 0, 0
	}
	line := bytes.Count(data[:i], []byte("\n")) + 1
	col := i - bytes.LastIndexByte(data[:i], '\n')
	return line, col
}
