# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP layer in its parts: one error renderer (errors), the pure ASGI middlewares (middleware),
what every route shares (common), and the routes by API area: OpenAI's (openai), the homelab guide's
(guide) and operations (ops). ``whisper_api.app.create_app`` puts them together."""
