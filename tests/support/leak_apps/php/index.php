<?php
// Fixture for posture's leak probe: the home page of a small PHP site.
// Its text talks about errors on purpose; the probe must not mistake that for a leak.
?><!doctype html>
<html><head><title>Fixture Securities</title></head>
<body>
<h1>Fixture Securities</h1>
<p>How we handle a PHP warning, a fatal error or an SQL exception: see our engineering blog.</p>
<a href="/item.php?id=1">Item 1</a> <a href="/about.php">About</a>
</body></html>
