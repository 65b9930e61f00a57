"""Output sinks: Markdown/LaTeX tables and the leaderboard files (:mod:`.tables`), the HTML report
(:mod:`.html`), plots (:mod:`.plots`) and the ERASER export (:mod:`.eraser`)."""
