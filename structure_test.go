package httpfutures_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The root package stays readable in pieces a newcomer can hold: no file over 450 lines, no
// function over 80, no struct over 20 fields (a field that embeds a named group counts once),
// the options' config aside, since it gathers every option.
func TestStructureStaysSmall(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		checked++
		lines := fset.Position(f.End()).Line
		assert.LessOrEqual(t, lines, 450, "%s: lines", name)
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.FuncDecl:
				length := fset.Position(x.End()).Line - fset.Position(x.Pos()).Line + 1
				assert.LessOrEqual(t, length, 80, "%s: func %s: lines", name, x.Name.Name)
			case *ast.TypeSpec:
				st, ok := x.Type.(*ast.StructType)
				if !ok || x.Name.Name == "config" {
					return true
				}
				fields := 0
				for _, fl := range st.Fields.List {
					fields += max(len(fl.Names), 1)
				}
				assert.LessOrEqual(t, fields, 20, "%s: struct %s: fields", name, x.Name.Name)
			}
			return true
		})
	}
	assert.Greater(t, checked, 20, "the package's files were read")
}
