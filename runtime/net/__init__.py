"""Multi-node networking: token authentication, audited TLS-capable channels, bulk object transfer.

`auth` (the cluster token and the HMAC handshake), `audit` (the connection log), `channel`
(`listen`/`connect`: authenticated framed-pickle channels) and `bulk` (moving object bytes
from one node's arena into another's). Import the submodules; this package imports nothing.
"""
