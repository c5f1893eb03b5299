"""Transport security and access control: TLS contexts for both ends, and the ACL policy the server enforces.

``tls`` builds :class:`ssl.SSLContext` objects from gearmand-style file options; ``policy`` is the pure access
policy (who may submit, work or administer which functions); ``guard`` applies a policy to a running engine;
``environment`` reads the client side's TLS and secret from the environment (libgearman's variables).
"""
