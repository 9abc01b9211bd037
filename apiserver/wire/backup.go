package wire

// BackupPath answers an admin's GET with a backup of the cluster: a tar
// stream in apiserver/backup's format, which the client encrypts.
const BackupPath = "/backup"
