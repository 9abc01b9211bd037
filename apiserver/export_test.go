package apiserver

// SetWholeListChunk makes a list without a limit read n objects at a time
// until the test ends (restore with the returned function).
func SetWholeListChunk(n int) (restore func()) {
	old := wholeListChunk
	wholeListChunk = n
	return func() { wholeListChunk = old }
}
