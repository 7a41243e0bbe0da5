<?php echo "<html><body><p>About us</p></body></html>";
