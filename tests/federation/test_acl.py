"""The pure server ACL matcher (spec: "Server Access Control Lists")."""

from twisted.trial import unittest

from federation.acl import server_allowed


class ServerAclTest(unittest.TestCase):
    def test_no_acl_allows_everyone(self):
        """A room without m.room.server_acl lets any server in."""
        self.assertTrue(server_allowed("anything.example", None))

    def test_deny_wins_over_allow(self):
        """A server matching both lists is denied; one matching only allow is allowed."""
        acl = {"allow": ["*"], "deny": ["*.evil.example", "evil.example"]}
        self.assertFalse(server_allowed("evil.example", acl))
        self.assertFalse(server_allowed("a.evil.example", acl))
        self.assertTrue(server_allowed("good.example", acl))
        self.assertTrue(server_allowed("notevil.example", acl))

    def test_empty_allow_denies_all(self):
        """An ACL without allow entries denies every server."""
        self.assertFalse(server_allowed("good.example", {"deny": []}))
        self.assertFalse(server_allowed("good.example", {}))

    def test_globs(self):
        """'?' is one character, '*' any run; matching is whole-name and ignores case."""
        acl = {"allow": ["ser?er.example", "*.trusted.org"]}
        self.assertTrue(server_allowed("server.example", acl))
        self.assertTrue(server_allowed("SERVER.example", acl))
        self.assertFalse(server_allowed("seerver.example", acl))
        self.assertFalse(server_allowed("server.example.com", acl))
        self.assertTrue(server_allowed("a.b.trusted.org", acl))
        self.assertFalse(server_allowed("trusted.org", acl))
        self.assertFalse(server_allowed("a.trusted.org.evil", acl))

    def test_port_ignored(self):
        """The port of a server name plays no part."""
        acl = {"allow": ["good.example"]}
        self.assertTrue(server_allowed("good.example:8448", acl))
        self.assertTrue(server_allowed("[::1]:8448", {"allow": ["[::1]"]}))

    def test_ip_literals(self):
        """allow_ip_literals false denies IPv4 and IPv6 literals even if allowed by glob."""
        acl = {"allow": ["*"], "allow_ip_literals": False}
        self.assertFalse(server_allowed("1.2.3.4", acl))
        self.assertFalse(server_allowed("1.2.3.4:8448", acl))
        self.assertFalse(server_allowed("[2001:db8::1]:8448", acl))
        self.assertTrue(server_allowed("example.org", acl))
        self.assertTrue(server_allowed("1.2.3.4", {"allow": ["*"]}))

    def test_malformed_entries_ignored(self):
        """Non-string globs and non-list fields are ignored rather than failing."""
        acl = {"allow": [1, None, "ok.example"], "deny": "ok.example"}
        self.assertTrue(server_allowed("ok.example", acl))
        self.assertFalse(server_allowed("other.example", acl))
