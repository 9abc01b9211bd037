// Package secrets owns Capstan's encrypted secrets: the secret file
// format committed to git (keys in clear, values encrypted, in the
// spirit of SOPS), the cluster's key ring kept in the server's data
// directory (an age identity that decrypts those files, and a key that
// seals values at rest in the store), and the keyed versions that make a
// changed value roll the pods that use it.
//
// Everything here is pure but for LoadOrCreate, which reads and writes
// the key files. A Keyring is immutable and safe for concurrent use.
//
// Why not the sops library: github.com/getsops/sops/v3 imports the SDKs
// of every key service it supports (AWS, GCP and Azure KMS, Vault,
// Huawei Cloud...), hundreds of modules for a single binary that needs
// only age. The format here keeps what matters of SOPS: keys in clear
// so a diff shows which key changed, each value encrypted on its own
// with a data key, the data key wrapped for several age recipients, and
// a MAC over the whole so that a removed or swapped value is noticed.
package secrets
