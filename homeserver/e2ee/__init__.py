"""End-to-end encryption plumbing (spec: Client-Server API, "End-to-End Encryption"):
the server stores and routes keys, signatures and backups; it never decrypts."""
