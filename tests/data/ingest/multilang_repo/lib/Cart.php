<?php

namespace App\Shop;

/**
 * A shopping cart holding product quantities.
 */
class Cart
{
    private array $items = [];

    /**
     * Adds $quantity units of the product with id $sku.
     */
    public function add(string $sku, int $quantity = 1): void
    {
        if ($quantity <= 0) {
            throw new \InvalidArgumentException('Quantity must be positive');
        }
        $this->items[$sku] = ($this->items[$sku] ?? 0) + $quantity;
    }

    // Total price of the cart given a map of unit prices.
    public function total(array $prices): float
    {
        $sum = 0.0;
        foreach ($this->items as $sku => $qty) {
            $sum += ($prices[$sku] ?? 0.0) * $qty;
        }
        return $sum;
    }
}

/**
 * Converts a string to a URL slug: "Hello World!" -> "hello-world".
 */
function slugify(string $text): string
{
    $text = strtolower(trim($text));
    $text = preg_replace('/[^a-z0-9]+/', '-', $text);
    return trim($text, '-');
}
