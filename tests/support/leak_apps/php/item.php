<?php
// Deliberately buggy: an unknown id is a warning (with file path and line) and a
// non-numeric one an uncaught TypeError. display_errors decides whether users see them.
declare(strict_types=1);

function price(int $id): int
{
    return $id * 100;
}

$prices = ['1' => 10];
$id = $_GET['id'] ?? '1';
echo '<html><body><p>Base ' . $prices[$id] . '</p>';
echo '<p>Price ' . price(preg_match('/^\d+$/', $id) ? (int) $id : $id) . '</p></body></html>';
